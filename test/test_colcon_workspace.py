"""In a robot's colcon workspace only dl_perception is found; pip-route interfaces stay out."""

from __future__ import annotations

from pathlib import Path
import shutil
import subprocess

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """Make a fresh workspace holding this repository as src/dl_perception."""
    shutil.copytree(REPO_ROOT, tmp_path / 'src' / 'dl_perception',
                    ignore=shutil.ignore_patterns('.git', '__pycache__', '.pytest_cache'))
    return tmp_path


@pytest.mark.ros
def test_colcon_list_finds_only_dl_perception(workspace):
    assert (workspace / 'src/dl_perception/tools/pip_interfaces/vision_msgs/package.xml').exists()
    result = subprocess.run(['colcon', 'list'], cwd=workspace, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    packages = [line.split('\t') for line in result.stdout.splitlines()]
    assert packages == [['dl_perception', 'src/dl_perception', '(ros.ament_python)']]
