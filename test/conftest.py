"""Shared fixtures: an isolated ROS 2 environment for each test that starts ROS processes."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
import subprocess
import sys

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
HELPERS = Path(__file__).resolve().parent / 'helpers'

# Domain ids 1..100 are safe on Linux; start where this run's pid points so that two test runs
# on one machine rarely meet, and step per test so that tests of one run never do.
_domain_ids = itertools.count(os.getpid() % 100)


@pytest.fixture
def ros_env(tmp_path: Path) -> dict[str, str]:
    """Environment for ROS subprocesses: a domain id of its own and logs inside the test."""
    log_dir = tmp_path / 'ros_log'
    log_dir.mkdir()
    env = dict(os.environ)
    env.update({
        'ROS_DOMAIN_ID': str(1 + next(_domain_ids) % 100),
        'ROS_LOG_DIR': str(log_dir),
        'PYTHONUNBUFFERED': '1',
    })
    env.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
    return env


def start_helper(script: str, *args: str, env: dict[str, str]) -> subprocess.Popen:
    """Start test/helpers/<script> in its own process with text pipes."""
    return subprocess.Popen([sys.executable, str(HELPERS / script), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


FASHION_MNIST = Path('/usr/share/datasets/fashion-mnist')


@pytest.fixture(scope='session')
def tiny_checkpoint(tmp_path_factory) -> Path:
    """Train a LeNet for two epochs on 2,000 Fashion-MNIST images; return its best.pt."""
    from dl_perception.training.config import parse_config
    from dl_perception.training.trainer import Trainer
    root = tmp_path_factory.mktemp('tiny')
    config = parse_config(None, [
        'model.name=lenet', 'data.train_subset=2000', 'data.test_subset=500',
        'data.val_fraction=0.01', 'data.workers=0', 'data.batch_size=64', 'epochs=2',
        'progress=false', f'output_dir={root}', 'run_name=tiny'])
    Trainer(config, root / 'tiny').fit()
    return root / 'tiny' / 'best.pt'


@pytest.fixture(scope='session')
def tiny_onnx(tiny_checkpoint, tmp_path_factory) -> Path:
    """Export (and parity-check) the tiny LeNet to ONNX."""
    from dl_perception.export.onnx_export import export_checkpoint
    from dl_perception.export.onnx_export import ExportOptions
    target = tmp_path_factory.mktemp('tiny_onnx') / 'lenet.onnx'
    export_checkpoint(tiny_checkpoint, ExportOptions(output=target, parity_images=64))
    return target
