"""
The life of a node process: start, spin, stop; SIGINT or SIGTERM at any moment exits 0 quietly.

rclpy turns the first SIGINT/SIGTERM into a context shutdown, which surfaces as
``KeyboardInterrupt``, ``ExternalShutdownException`` or an ``RCLError`` (a ``RuntimeError``)
from whatever was running; a second signal during clean-up, or one before rclpy installed its
handlers, would otherwise end the process with a traceback and exit status -2. So every node
``main`` goes through ``run_node`` (and the console scripts through ``entry_points``, which
also cover the seconds spent importing rclpy, OpenCV and ONNX Runtime). Executors are made
by ``new_executor``: a signal that lands inside an executor's constructor leaves a half-made
object whose destructor prints a traceback at exit.

Tearing the node down can hang: Fast DDS 3.2.3 deadlocks in ``destroy_participant`` when
other participants leave at the same moment (one process of a three-process start/stop loop
spun there for 38 minutes, ignoring SIGTERM). Teardown therefore runs
under ``faulthandler``'s watchdog, a C thread that needs no GIL: after ``TEARDOWN_LIMIT_S``
it prints every thread's stack and exits with status 1, so a hang is a visible failure, not a
process that never ends.
"""

from __future__ import annotations

from collections.abc import Callable
import faulthandler
import signal
import sys

from dl_perception.ros.entry_points import ignore_interrupts
from dl_perception.ros.entry_points import interrupts_raise
import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

# What a node constructor raises for settings it cannot work with: exit status 1.
START_ERRORS = (ValueError, ParameterException, FileNotFoundError)
# Destroying a node and shutting rclpy down takes well under a second when nothing hangs.
TEARDOWN_LIMIT_S = 10.0


def new_executor(node: Node) -> SingleThreadedExecutor:
    """Return a SingleThreadedExecutor serving ``node``, built with SIGINT/SIGTERM held back."""
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        executor = SingleThreadedExecutor()
        executor.add_node(node)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)  # a held signal is delivered now
    return executor


def run_node(create_node: Callable[[], Node], args: list[str] | None = None, *,
             name: str = 'dl_perception', spin: Callable[[Node], object] = rclpy.spin,
             on_interrupt: Callable[[Node], None] | None = None) -> int:
    """
    Init rclpy, create the node, spin it, release everything; return the exit status.

    :param create_node: builds the node after ``rclpy.init``; a ``START_ERRORS`` exception
        from it means unusable settings: logged (by the logger ``name``), status 1.
    :param spin: runs the node until it is done (``rclpy.spin`` by default: until
        interrupted).
    :param on_interrupt: called with the node when SIGINT/SIGTERM stopped it (e.g. to log a
        summary).
    :returns: 0 when the node finished or was interrupted, 1 when it could not start.
    """
    node = None
    try:
        interrupts_raise()
        rclpy.init(args=args)
        try:
            node = create_node()
        except START_ERRORS as error:
            if not rclpy.ok():
                return 0  # interrupted while starting: the error is the shutdown's
            rclpy.logging.get_logger(name).error(f'invalid parameters: {error}')
            return 1
        spin(node)
        return 0
    except (KeyboardInterrupt, ExternalShutdownException):
        if node is not None and on_interrupt is not None:
            on_interrupt(node)
        return 0
    except RuntimeError:
        # rclpy's signal handler shuts the context down from another thread, so a call in
        # flight can fail with RCLError instead: a requested stop. Anything else is a bug.
        if rclpy.ok():
            raise
        return 0
    finally:
        ignore_interrupts()
        tear_down(node)


def tear_down(node: Node | None) -> None:
    """Destroy ``node`` and shut rclpy down; a hang there ends the process (status 1)."""
    faulthandler.dump_traceback_later(TEARDOWN_LIMIT_S, exit=True, file=sys.stderr)
    try:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    finally:
        faulthandler.cancel_dump_traceback_later()
