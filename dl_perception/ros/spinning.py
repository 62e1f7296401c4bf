"""
The life of a node process: start, spin, stop; SIGINT or SIGTERM at any moment exits 0 quietly.

rclpy turns the first SIGINT/SIGTERM into a context shutdown, which surfaces as
``KeyboardInterrupt``, ``ExternalShutdownException`` or an ``RCLError`` (a ``RuntimeError``)
from whatever was running; a second signal during clean-up, or one before rclpy installed its
handlers, would otherwise end the process with a traceback and exit status -2. So every node
``main`` goes through ``run_node`` (and the console scripts through ``entry_points``, which
also cover the seconds spent importing rclpy, OpenCV and ONNX Runtime).

rclpy's handler shuts the context down from its own thread, so anything built on the context
after a signal can fail half-way, and a half-made executor prints tracebacks from its
destructor at exit. ``run_node`` therefore builds the node's executor before rclpy's handlers
are installed, with interrupts held back, and only then the node: from then on an interrupt
finds everything whole. That thread wakes the executor first and shuts the context down after,
so the node's teardown could run while ``rcl_shutdown`` was still under way, and destroying a
publisher or service then crashed the process (SIGSEGV in about one SIGINT stop in thirty).
Teardown therefore starts by uninstalling rclpy's handlers, which joins that thread: a shutdown
it began has finished before anything is destroyed.

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
import sys

from dl_perception.ros.entry_points import ignore_interrupts
from dl_perception.ros.entry_points import interrupts_held
from dl_perception.ros.entry_points import interrupts_raise
import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import install_signal_handlers
from rclpy.signals import SignalHandlerOptions
from rclpy.signals import uninstall_signal_handlers

# What a node constructor raises for settings it cannot work with: exit status 1.
START_ERRORS = (ValueError, ParameterException, FileNotFoundError)
# Destroying a node and shutting rclpy down takes well under a second when nothing hangs.
TEARDOWN_LIMIT_S = 10.0


def spin_until_shutdown(node: Node, executor: SingleThreadedExecutor) -> None:
    """Serve ``node`` until the context is shut down (by SIGINT/SIGTERM)."""
    executor.spin()


def run_node(create_node: Callable[[], Node], args: list[str] | None = None, *,
             name: str = 'dl_perception',
             spin: Callable[[Node, SingleThreadedExecutor], object] = spin_until_shutdown,
             on_interrupt: Callable[[Node], None] | None = None) -> int:
    """
    Init rclpy, create the node, spin it, release everything; return the exit status.

    :param create_node: builds the node after ``rclpy.init``; a ``START_ERRORS`` exception
        from it means unusable settings: logged (by the logger ``name``), status 1.
    :param spin: runs the node, already added to the executor it is given, until it is done
        (``spin_until_shutdown`` by default: until interrupted).
    :param on_interrupt: called with the node when SIGINT/SIGTERM stopped it (e.g. to log a
        summary).
    :returns: 0 when the node finished or was interrupted, 1 when it could not start.
    """
    node = executor = None
    try:
        interrupts_raise()
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
        with interrupts_held():
            executor = SingleThreadedExecutor()
        install_signal_handlers(SignalHandlerOptions.ALL)
        try:
            node = create_node()
        except START_ERRORS as error:
            if not rclpy.ok():
                return 0  # interrupted while starting: the error is the shutdown's
            rclpy.logging.get_logger(name).error(f'invalid parameters: {error}')
            return 1
        executor.add_node(node)
        spin(node, executor)
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
        tear_down(node, executor)


def tear_down(node: Node | None, executor: SingleThreadedExecutor | None) -> None:
    """Release the executor and ``node``, shut rclpy down; a hang there ends the process (1)."""
    faulthandler.dump_traceback_later(TEARDOWN_LIMIT_S, exit=True, file=sys.stderr)
    try:
        # Joins rclpy's signal thread, so no rcl_shutdown runs beside what follows. A handler
        # another owner installed over rclpy's (ignore_interrupts' SIG_IGN) stays in place.
        uninstall_signal_handlers()
        if executor is not None:
            executor.shutdown()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    finally:
        faulthandler.cancel_dump_traceback_later()
