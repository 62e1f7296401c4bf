"""
A 'classifier' that is always right: republish each ground_truth as a classification.

Each ground_truth message goes out on ``classification`` unchanged (same header, same
results), so a monitor must score accuracy 1.0. Messages wait until the classification
publisher has a subscriber, so none are lost while the monitor is being discovered.
Runs until SIGINT or SIGTERM.
"""

from __future__ import annotations

import sys

from dl_perception.ros.spinning import run_node
import rclpy
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rclpy.qos import ReliabilityPolicy
from vision_msgs.msg import Classification


def build() -> Node:
    node = rclpy.create_node('perfect_classifier')
    qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    publisher = node.create_publisher(Classification, 'classification', qos)
    waiting: list[Classification] = []

    def flush() -> None:
        if publisher.get_subscription_count():
            for msg in waiting:
                publisher.publish(msg)
            waiting.clear()

    def on_truth(msg: Classification) -> None:
        waiting.append(msg)
        flush()

    node.create_subscription(Classification, 'ground_truth', on_truth, qos)
    node.create_timer(0.02, flush)
    print('ready', flush=True)
    return node


if __name__ == '__main__':
    sys.exit(run_node(build))
