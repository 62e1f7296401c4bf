"""The nodes' console-script entry and teardown: an interrupt is a quiet exit 0, a hang ends."""

from __future__ import annotations

from pathlib import Path
import signal
import subprocess
import sys
import time

from dl_perception.ros.entry_points import run_main
from dl_perception.ros.entry_points import STOP_SIGNALS
from paths import HELPERS
import pytest


@pytest.fixture
def node_module(tmp_path: Path, monkeypatch):
    """Write a module of the given source under a fresh name; restore the signal handlers."""
    handlers = {number: signal.getsignal(number) for number in STOP_SIGNALS}
    monkeypatch.syspath_prepend(str(tmp_path))
    names = []

    def write(source: str) -> str:
        name = f'entry_test_module_{len(names)}'
        (tmp_path / f'{name}.py').write_text(source)
        names.append(name)
        return name

    yield write
    for name in names:
        sys.modules.pop(name, None)
    for number, handler in handlers.items():
        signal.signal(number, handler)


def test_main_s_status_is_returned(node_module):
    assert run_main(node_module('def main():\n    return 3\n')) == 3


def test_an_interrupt_inside_an_extension_s_initialisation_is_an_interrupt(node_module):
    # What ONNX Runtime's pybind module raises when SIGINT lands in its initialisation.
    name = node_module("raise ImportError('initialization failed') from KeyboardInterrupt()\n")
    assert run_main(name) == 0
    assert all(signal.getsignal(number) is signal.SIG_IGN for number in STOP_SIGNALS)


def test_an_interrupt_while_main_handles_an_error_is_an_interrupt(node_module):
    name = node_module('def main():\n    try:\n        raise KeyboardInterrupt\n'
                       '    finally:\n        raise RuntimeError("while stopping")\n')
    assert run_main(name) == 0


def test_a_real_import_error_is_not_swallowed(node_module):
    with pytest.raises(ImportError, match='no such thing'):
        run_main(node_module("raise ImportError('no such thing')\n"))


@pytest.mark.ros
def test_a_hanging_teardown_ends_the_process_with_the_stacks(ros_env):
    # Fast DDS once spun 38 minutes in destroy_participant; the process must not.
    started = time.monotonic()
    result = subprocess.run([sys.executable, str(HELPERS / 'hanging_teardown_node.py'), '1.0'],
                            env=ros_env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result
    assert 'tearing down' in result.stdout
    assert 'Timeout' in result.stderr and 'in destroy_node' in result.stderr, result.stderr
    assert time.monotonic() - started < 30


@pytest.mark.ros
def test_an_interrupt_just_after_the_node_is_made_exits_0_quietly(ros_env):
    # The executor used to be built after the node, on a context the interrupt had shut
    # down: its half-made parts printed tracebacks at exit (1 CI run in 3 on 2026-12-03).
    result = subprocess.run([sys.executable, str(HELPERS / 'late_interrupt_node.py')],
                            env=ros_env, capture_output=True, text=True, timeout=60)
    assert 'constructed on a shut-down context' in result.stdout, result
    assert result.returncode == 0, result
    assert 'Traceback' not in result.stderr and 'Exception ignored' not in result.stderr, result
