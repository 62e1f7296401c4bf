"""Spin a node until SIGINT/SIGTERM, then release it: the main loop of a simple node process."""

from __future__ import annotations

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node


def spin_until_interrupted(node: Node) -> int:
    """Spin ``node`` until the process is interrupted, destroy it, shut rclpy down; return 0."""
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
