"""
Shared fixtures, and the test tiers.

Tiers: ``unit`` (in-process: no processes, no training beyond a few steps; ``make test-fast``
runs exactly these), ``ros`` (starts processes), ``slow`` (over ``SLOW_LIMIT_S`` each) and
``linter``. ``unit`` is never written by hand: every test that is none of the others gets it
at collection. A unit test that starts a process fails, and so does any test whose call phase
runs past ``SLOW_LIMIT_S`` (on an idle machine: see machine_load) without being marked slow.
"""

from __future__ import annotations

import os
from pathlib import Path
import subprocess
import sys

import pytest

# Shared plain helpers live in test/helpers/; tests import them by module name from there.
sys.path.insert(0, str(Path(__file__).resolve().parent / 'helpers'))

from machine_load import LoadMeter  # noqa: E402, I100 - found through the path set above
from ros_testing import domain_ids  # noqa: E402
from ros_testing import Ros2Command  # noqa: E402
from ros_testing import ros_arguments  # noqa: E402
from ros_testing import RunningNode  # noqa: E402
from ros_testing import tooling_built  # noqa: E402
from ros_testing import TOOLING_MISSING  # noqa: E402
from ros_testing import TOOLING_SOURCE  # noqa: E402

# Tests marked with one of these are not unit tests.
NOT_UNIT = ('ros', 'slow', 'linter')
# A test whose call phase takes longer than this on an idle machine must be marked slow.
SLOW_LIMIT_S = float(os.environ.get('DLP_SLOW_LIMIT_S', '10'))
TEST_DIR = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Mark every test that is neither ros, slow nor linter as unit (before -m selects)."""
    for item in items:
        if not any(item.get_closest_marker(name) for name in NOT_UNIT):
            item.add_marker(pytest.mark.unit)


def _caller_outside_subprocess() -> str:
    """Return the file of the first frame on the stack outside the subprocess module."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename == subprocess.__file__:
        frame = frame.f_back
    return frame.f_code.co_filename if frame is not None else ''


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """In a unit test, starting a process from test code fails the test: mark it ros or slow."""
    if item.get_closest_marker('unit') is None:
        return (yield)
    original = subprocess.Popen.__init__

    def refuse(self, *args, **kwargs):
        if Path(_caller_outside_subprocess()).resolve().is_relative_to(TEST_DIR):
            self._child_created = False  # Popen.__del__ reads it
            pytest.fail(f'{item.nodeid} is a unit test but starts a process '
                        f'({args[0] if args else kwargs.get("args")!r}): mark it ros (or '
                        'slow), or call the code in-process', pytrace=False)
        original(self, *args, **kwargs)

    subprocess.Popen.__init__ = refuse
    try:
        return (yield)
    finally:
        subprocess.Popen.__init__ = original


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """Measure the call phase against the machine's load (see machine_load)."""
    item.load_meter = LoadMeter.start()
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """
    Fail a test whose call phase ran past SLOW_LIMIT_S unless it is marked slow.

    The time compared is the wall time less what other processes took meanwhile, so a test
    is not failed because someone else loaded the machine.
    """
    report = yield
    meter = getattr(item, 'load_meter', None)
    if (call.when != 'call' or not report.passed or meter is None
            or item.get_closest_marker('slow') is not None):
        return report
    wall, idle_estimate = meter.finish()
    if idle_estimate > SLOW_LIMIT_S:
        report.outcome = 'failed'
        report.longrepr = (f'{item.nodeid} took {wall:.1f} s ({idle_estimate:.1f} s without '
                           f'the load of other processes; limit {SLOW_LIMIT_S:g} s, '
                           'DLP_SLOW_LIMIT_S): mark it slow, or make it cheaper')
    return report


@pytest.fixture
def ros_env(tmp_path: Path) -> dict[str, str]:
    """Environment for ROS subprocesses: a domain id of its own and logs inside the test."""
    log_dir = tmp_path / 'ros_log'
    log_dir.mkdir()
    env = dict(os.environ)
    env.update({
        'ROS_DOMAIN_ID': str(next(domain_ids)),
        'ROS_LOG_DIR': str(log_dir),
        'PYTHONUNBUFFERED': '1',
    })
    env.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
    return env


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


@pytest.fixture(scope='session')
def int8(tiny_onnx, tmp_path_factory):
    """Quantize the tiny LeNet once: 64 calibration images, 2,000 test images measured."""
    from dl_perception.export.quantize import quantize_onnx
    from dl_perception.export.quantize import QuantizationOptions
    options = QuantizationOptions(calibration_images=64, evaluation_images=2000)
    return quantize_onnx(tiny_onnx, tmp_path_factory.mktemp('int8') / 'lenet.onnx', options)


@pytest.fixture
def start_node(ros_env):
    """Start ROS node modules (python -m MODULE --ros-args ...); stop them after the test."""
    nodes = []

    def start(module: str, parameters: dict, *extra: str) -> RunningNode:
        node = RunningNode([sys.executable, '-m', module, *ros_arguments(parameters), *extra],
                           ros_env)
        nodes.append(node)
        return node

    yield start
    for node in nodes:
        node.stop()


@pytest.fixture
def ros2_cli(ros_env) -> dict[str, str]:
    """
    Return ``ros_env`` with the upstream ``ros2`` on its PATH; skip when it is not built.

    Where the tooling folder exists a missing build is an error, never a silent skip.
    """
    if not tooling_built():
        if TOOLING_SOURCE.is_dir():
            pytest.fail(f'{TOOLING_SOURCE} exists but its build is not in this environment: '
                        'run make setup, then source tools/activate.sh')
        pytest.skip(TOOLING_MISSING)
    return ros_env


@pytest.fixture
def upstream_vision_msgs_env(ros2_cli) -> dict[str, str]:
    """
    Return an environment that sees the tooling and upstream vision_msgs, not our build.

    Nothing of the pip-route interfaces or the overlay is left in it: the search paths start
    again from the venv, then the two upstream prefixes' local_setup.bash are sourced.
    """
    prefix = os.environ.get('DLP_UPSTREAM_VISION_MSGS')
    if not prefix:
        pytest.fail('upstream vision_msgs not built: run make setup with ../shared/ros2_tooling')
    # Without its guard variable the ROS wheels' bootstrapper sets LD_LIBRARY_PATH again.
    base = {name: value for name, value in ros2_cli.items() if name not in (
        'PYTHONPATH', 'AMENT_PREFIX_PATH', 'COLCON_PREFIX_PATH', 'CMAKE_PREFIX_PATH',
        'LD_LIBRARY_PATH', '_ROS_WHEELS_BOOTSTRAP_COMPLETE')}
    base['AMENT_PREFIX_PATH'] = sys.prefix
    script = ('set -e; for p in "$@"; do source "$p/local_setup.bash"; done; '
              'exec env -0')
    dumped = subprocess.run(['bash', '-c', script, 'bash', os.environ['DLP_TOOLING_PREFIX'],
                             prefix], env=base, capture_output=True, check=True).stdout
    return dict(item.split('=', 1) for item in dumped.decode().split('\0') if '=' in item)


@pytest.fixture
def ros2(ros2_cli):
    """
    Start ``ros2`` commands (launch, run) for a test; arguments as on the command line.

    Each runs with the test's ROS_DOMAIN_ID and ROS_LOG_DIR; whatever still runs after the
    test gets SIGINT, then its process group is killed.
    """
    started: list[Ros2Command] = []

    def start(*arguments: str, env: dict[str, str] | None = None) -> Ros2Command:
        command = Ros2Command(list(arguments), ros2_cli if env is None else env)
        started.append(command)
        return command

    yield start
    for command in started:
        command.stop()
