"""
A node interrupted the moment its constructor ends, run through ``run_node`` like every node.

rclpy's signal handler shuts the context down from its own thread, so a SIGINT that lands
just after a node is made finds the process building its executor on a dead context. This
node sends itself SIGINT, takes the KeyboardInterrupt as if it had come a moment later,
and returns once rclpy has shut the context down: the process must still exit 0 quietly.
"""

from __future__ import annotations

import os
import signal
import sys
import time

from dl_perception.ros import spinning
import rclpy
from rclpy.node import Node


class LateInterruptNode(Node):
    """A node whose last act in its constructor is to interrupt its own process."""

    def __init__(self) -> None:
        super().__init__('late_interrupt')
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(10.0)  # the KeyboardInterrupt lands here
        except KeyboardInterrupt:
            pass
        while rclpy.ok():  # rclpy's handler thread shuts the context down
            time.sleep(0.01)
        print('constructed on a shut-down context', flush=True)


if __name__ == '__main__':
    sys.exit(spinning.run_node(LateInterruptNode, sys.argv[:1]))
