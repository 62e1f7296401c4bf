"""
Plain helpers for tests that drive ROS 2 processes: starting them, feeding and reading them.

Tests import them by name (conftest puts test/helpers on ``sys.path``); the fixtures built on
them (``ros_env``, ``start_node``, ``ros2``...) stay in conftest.
"""

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
import threading
import time

from paths import HELPERS
from paths import REPO_ROOT
import pytest

# Domain ids 1..101 are safe on Linux. Each test takes the next id of a per-run shuffled
# order: tests of one run never share a domain, and two runs (or the ghosts of a killed run's
# participants, which DDS remembers for a while) rarely meet.
domain_ids = itertools.cycle(
    random.Random(time.time_ns() ^ os.getpid()).sample(range(1, 102), 101))


def start_helper(script: str, *args: str, env: dict[str, str]) -> subprocess.Popen:
    """Start test/helpers/<script> in its own process with text pipes."""
    return subprocess.Popen([sys.executable, str(HELPERS / script), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


class RunningNode:
    """A node process whose log lines are collected as they come (stderr and stdout)."""

    def __init__(self, command: list[str], env: dict[str, str], **popen) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._ended = False
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, **popen)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    @property
    def output(self) -> str:
        return ''.join(self.lines)

    def wait_for(self, text: str, timeout: float = 60.0) -> None:
        """Wait until ``text`` is in the output; fail if the output ends or time runs out."""
        with self._changed:
            self._changed.wait_for(lambda: text in self.output or self._ended, timeout)
        if text not in self.output:
            raise AssertionError(f'{text!r} never appeared; node output:\n{self.output}')

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


def tooling_built() -> bool:
    return bool(os.environ.get('DLP_TOOLING_PREFIX')) and shutil.which('ros2') is not None


# Mark a robot-route module or test with it: the skip comes before any fixture is set up (a
# session fixture such as tiny_onnx would otherwise train first). Where the tooling folder
# exists nothing is skipped; fixture ``ros2_cli`` then fails if the build is missing.
requires_ros2_tooling = pytest.mark.skipif(
    not tooling_built() and not TOOLING_SOURCE.is_dir(), reason=TOOLING_MISSING)


class Ros2Command(RunningNode):
    """A ``ros2 ...`` process (launch, run) in a process group of its own, output collected."""

    def __init__(self, arguments: list[str], env: dict[str, str]) -> None:
        self.command = ['ros2', *arguments]
        super().__init__(self.command, env, start_new_session=True)

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
