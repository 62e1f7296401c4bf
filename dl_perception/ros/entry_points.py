"""
Console-script entry points of the nodes; standard library only, so that they load at once.

A node module imports rclpy, OpenCV and ONNX Runtime, which takes a second or more: a SIGINT
in that window (a launch file stopped while it starts) would print a KeyboardInterrupt
traceback and exit -2. These entry points make interrupts raise KeyboardInterrupt first, then
import the node, and turn an interrupt at any point into a quiet exit 0. An interrupt inside
a C extension's initialisation (ONNX Runtime's) comes out as an ImportError caused by the
KeyboardInterrupt: that too is an interrupt.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import importlib
import signal

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def interrupts_raise() -> None:
    """Make SIGINT and SIGTERM raise KeyboardInterrupt (until rclpy installs its handlers)."""
    for number in STOP_SIGNALS:
        signal.signal(number, signal.default_int_handler)


@contextlib.contextmanager
def interrupts_held() -> Iterator[None]:
    """
    Hold SIGINT/SIGTERM back inside the block; one that came raises KeyboardInterrupt after it.

    For building objects that an exception half-way would leave broken (an rclpy executor). It
    replaces Python's handlers, so it is only for code that runs before rclpy installs its own.
    """
    arrived = []
    previous = {number: signal.signal(number, lambda number, frame: arrived.append(number))
                for number in STOP_SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    if arrived:
        raise KeyboardInterrupt


def ignore_interrupts() -> None:
    """Ignore further SIGINT/SIGTERM: the process is already stopping."""
    for number in STOP_SIGNALS:
        signal.signal(number, signal.SIG_IGN)


def caused_by_interrupt(error: BaseException) -> bool:
    """Return whether ``error`` is, or was raised while handling, a KeyboardInterrupt."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def run_main(module: str) -> int:
    """Import ``module`` and return what its ``main()`` returns; 0 when interrupted."""
    try:
        interrupts_raise()
        return importlib.import_module(module).main()
    except BaseException as error:  # noqa: B902 - only interrupts are swallowed
        if not caused_by_interrupt(error):
            raise
        ignore_interrupts()
        return 0


def classifier_node() -> int:
    """Run ``classifier_node``."""
    return run_main('dl_perception.ros.classifier_node')


def image_source_node() -> int:
    """Run ``image_source_node``."""
    return run_main('dl_perception.ros.image_source_node')
