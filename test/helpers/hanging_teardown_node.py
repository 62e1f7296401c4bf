"""
A node whose teardown hangs on purpose, run through ``run_node`` like every node.

    hanging_teardown_node.py LIMIT_S

It stands for Fast DDS's deadlock in ``destroy_participant``: ``destroy_node`` never
returns. The node has nothing to do, so it is torn down at once; with the teardown limit
set to LIMIT_S the process must end by itself soon after, with status 1 and the stacks.
"""

from __future__ import annotations

import sys
import time

from dl_perception.ros import spinning
from rclpy.node import Node


class HangingTeardownNode(Node):
    """A node that prints 'tearing down', then hangs in ``destroy_node``."""

    def __init__(self) -> None:
        super().__init__('hanging_teardown')

    def destroy_node(self) -> None:
        print('tearing down', flush=True)
        time.sleep(3600)


if __name__ == '__main__':
    spinning.TEARDOWN_LIMIT_S = float(sys.argv[1])
    sys.exit(spinning.run_node(HangingTeardownNode, sys.argv[:1],
                               spin=lambda node, executor: None))
