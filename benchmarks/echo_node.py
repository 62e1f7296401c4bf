"""
The transport floor: a node that answers every image at once, without looking at it.

``python -m benchmarks pipeline`` times it like the classifier nodes, so what ROS 2 itself
costs (moving a 640x480 image between processes and a result back) is separated from what our
node adds.
"""

from __future__ import annotations

import sys

from dl_perception.ros.spinning import run_node
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import Image
from vision_msgs.msg import Classification


class EchoNode(Node):
    """Publish an empty Classification with the header of each image received."""

    def __init__(self) -> None:
        super().__init__('echo')
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        self.publisher = self.create_publisher(Classification, 'classification', qos)
        self.create_subscription(Image, 'image', self.on_image, qos)

    def on_image(self, msg: Image) -> None:
        """Answer immediately."""
        self.publisher.publish(Classification(header=msg.header))


def main(args: list[str] | None = None) -> int:
    """Run until interrupted."""
    return run_node(EchoNode, args)


if __name__ == '__main__':
    sys.exit(main())
