"""Shared fixtures: an isolated ROS 2 environment for each test that starts ROS processes."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
HELPERS = Path(__file__).resolve().parent / 'helpers'

# Domain ids 1..101 are safe on Linux. Each test takes the next id of a per-run shuffled
# order: tests of one run never share a domain, and two runs (or the ghosts of a killed run's
# participants, which DDS remembers for a while) rarely meet.
_domain_ids = itertools.cycle(random.Random(time.time_ns() ^ os.getpid()).sample(range(1, 102),
                                                                                 101))


@pytest.fixture
def ros_env(tmp_path: Path) -> dict[str, str]:
    """Environment for ROS subprocesses: a domain id of its own and logs inside the test."""
    log_dir = tmp_path / 'ros_log'
    log_dir.mkdir()
    env = dict(os.environ)
    env.update({
        'ROS_DOMAIN_ID': str(next(_domain_ids)),
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


@pytest.fixture(scope='session')
def int8(tiny_onnx, tmp_path_factory):
    """Quantize the tiny LeNet once: 64 calibration images, 2,000 test images measured."""
    from dl_perception.export.quantize import quantize_onnx
    from dl_perception.export.quantize import QuantizationOptions
    options = QuantizationOptions(calibration_images=64, evaluation_images=2000)
    return quantize_onnx(tiny_onnx, tmp_path_factory.mktemp('int8') / 'lenet.onnx', options)


class RunningNode:
    """A node process whose log lines are collected as they come (stderr and stdout)."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        import threading
        self.lines: list[str] = []
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return ''.join(self.lines)

    def wait_for(self, text: str, timeout: float = 60.0) -> None:
        import time
        deadline = time.monotonic() + timeout
        while text not in self.output:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f'{text!r} never appeared; node output:\n{self.output}')
            time.sleep(0.05)

    def stop(self, signal_number: int = 2, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal_number)
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code


def ros_arguments(parameters: dict) -> list[str]:
    """--ros-args -p name:=value ... with values written as YAML (JSON is valid YAML)."""
    arguments = ['--ros-args']
    for name, value in parameters.items():
        arguments += ['-p', f'{name}:={json.dumps(value)}']
    return arguments


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


def probe(ros_env: dict, *args: str, timeout: float = 90.0) -> subprocess.CompletedProcess:
    """Run test/helpers/ros_probe.py with arguments (JSON specs as strings)."""
    return subprocess.run([sys.executable, str(HELPERS / 'ros_probe.py'), *args], env=ros_env,
                          capture_output=True, text=True, timeout=timeout)


def start_recorder(ros_env: dict, topics: dict, timeout: float = 60.0) -> subprocess.Popen:
    """Start recording topics; return once every topic has a publisher (or on timeout)."""
    spec = json.dumps({'topics': topics, 'timeout': timeout})
    recorder = subprocess.Popen([sys.executable, str(HELPERS / 'ros_probe.py'), 'record', spec],
                                env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    assert read_line(recorder.stdout) == 'ready'
    return recorder


def read_line(pipe) -> str:
    """
    Read one line from a child's pipe without buffering past it; return it stripped.

    ``pipe.readline()`` may read ahead, and ``communicate()`` later reads the file
    descriptor, never that buffer: a message sent right after 'ready' would be lost.
    """
    line = bytearray()
    while (byte := os.read(pipe.fileno(), 1)) and byte != b'\n':
        line += byte
    return line.decode().strip()


def recorded(recorder: subprocess.Popen, timeout: float = 90.0) -> dict[str, list[dict]]:
    """Wait for the recorder; return its messages by topic (the recorder's stderr if none)."""
    out, err = recorder.communicate(timeout=timeout)
    messages: dict[str, list[dict]] = {}
    for line in out.splitlines():
        item = json.loads(line)
        messages.setdefault(item['topic'], []).append(item['message'])
    assert messages or recorder.returncode != 0, err
    return messages


def publish(ros_env: dict, **spec) -> None:
    result = probe(ros_env, 'publish', json.dumps(spec))
    assert result.returncode == 0 and 'done' in result.stdout, result.stderr


def diagnostics(ros_env: dict, count: int = 1, timeout: float = 60.0) -> list[dict]:
    """Record ``count`` /diagnostics reports; return each one's first status, plain."""
    recorder = start_recorder(ros_env, {'/diagnostics': {'type': 'DiagnosticArray',
                                                         'count': count}}, timeout=timeout)
    return [report['status'][0] for report in recorded(recorder)['/diagnostics']]


def values_of(status: dict) -> dict[str, str]:
    """Return a diagnostic status's key/value pairs as a dict."""
    return {pair['key']: pair['value'] for pair in status['values']}


def set_parameter(ros_env: dict, node: str, name: str, value: str) -> dict:
    """Set one parameter through the ROS service; return {'successful', 'reason'}."""
    return json.loads(probe(ros_env, 'set', node, name, value).stdout)


# The robot route: upstream `ros2` (launch, run, param, lifecycle, topic) built by `make setup`
# from ../shared/ros2_tooling into the cache and put on the PATH by tools/activate.sh.
TOOLING_SOURCE = Path(os.environ.get('DLP_ROS2_TOOLING',
                                     REPO_ROOT.parent / 'shared' / 'ros2_tooling'))
TOOLING_MISSING = '../shared/ros2_tooling not built: run make setup with it present'


def _tooling_built() -> bool:
    return bool(os.environ.get('DLP_TOOLING_PREFIX')) and shutil.which('ros2') is not None


# Mark a robot-route module or test with it: the skip comes before any fixture is set up (a
# session fixture such as tiny_onnx would otherwise train first). Where the tooling folder
# exists nothing is skipped; fixture ``ros2_cli`` then fails if the build is missing.
requires_ros2_tooling = pytest.mark.skipif(
    not _tooling_built() and not TOOLING_SOURCE.is_dir(), reason=TOOLING_MISSING)


@pytest.fixture
def ros2_cli(ros_env) -> dict[str, str]:
    """
    Return ``ros_env`` with the upstream ``ros2`` on its PATH; skip when it is not built.

    Where the tooling folder exists a missing build is an error, never a silent skip.
    """
    if not _tooling_built():
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


class Ros2Command(RunningNode):
    """A ``ros2 ...`` process (launch, run) in a process group of its own, output collected."""

    def __init__(self, arguments: list[str], env: dict[str, str]) -> None:
        import threading
        self.command = ['ros2', *arguments]
        self.lines = []
        self.process = subprocess.Popen(self.command, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True,
                                        start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def wait(self, timeout: float) -> int:
        """Wait for the process to end by itself; return its exit code."""
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f'{self.command} still ran after {timeout:g} s; output:\n'
                                 f'{self.output}') from None
        self._reader.join(timeout=5)
        return code

    def stop(self, signal_number: int = signal.SIGINT, timeout: float = 30.0) -> int:
        """
        Send SIGINT to the group, as Ctrl-C does; wait; kill the whole group if it hangs.

        ``ros2 run`` relies on that: it waits for its child to get the signal too.
        """
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal_number)
            except ProcessLookupError:
                pass
        try:
            return self.wait(timeout)
        finally:
            self.kill()

    def kill(self) -> None:
        """SIGKILL what is left of the process group (children that outlived their parent)."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


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


def ros2_until(env: dict[str, str], *arguments: str, expect: str,
               timeout: float = 30.0) -> str:
    """
    Run a short ``ros2`` command (no daemon) until it succeeds with ``expect`` in its output.

    Discovery takes a moment, so a first "node not found" is retried, never slept over.
    """
    deadline = time.monotonic() + timeout
    while True:
        done = subprocess.run(['ros2', *arguments, '--no-daemon'], env=env, capture_output=True,
                              text=True, timeout=timeout)
        output = done.stdout + done.stderr
        if done.returncode == 0 and expect in output:
            return output
        if time.monotonic() > deadline:
            raise AssertionError(f'ros2 {" ".join(arguments)} never printed {expect!r}; last '
                                 f'exit {done.returncode}, output:\n{output}')


def train_folder_lenet(root: Path, input_size: int, epochs: int) -> Path:
    """Train a LeNet on the image folder ``root / 'data'``, export it; return the ONNX path."""
    from dl_perception.export.onnx_export import export_checkpoint
    from dl_perception.export.onnx_export import ExportOptions
    from dl_perception.training.config import parse_config
    from dl_perception.training.trainer import Trainer
    config = parse_config(None, [
        'model.name=lenet', 'data.dataset=folder', f'data.root={root / "data"}',
        f'data.input_size={input_size}', 'data.workers=0', 'data.batch_size=32',
        f'epochs={epochs}', 'progress=false', f'output_dir={root}', 'run_name=tiles'])
    Trainer(config, root / 'tiles').fit()
    target = root / 'tiles.onnx'
    export_checkpoint(root / 'tiles' / 'best.pt', ExportOptions(output=target, parity_images=32))
    return target
