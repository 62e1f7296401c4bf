"""
Print the first message received on each vision topic as one JSON line, then exit.

Exit status 0 when every topic delivered, 1 on timeout (naming what is missing).
"""

from __future__ import annotations

import json
import sys
import time

from message_json import to_plain
import rclpy
from rclpy.qos import DurabilityPolicy
from rclpy.qos import QoSProfile
from rclpy.qos import ReliabilityPolicy
from vision_msgs.msg import Classification
from vision_msgs.msg import Detection2DArray
from vision_msgs.msg import LabelInfo

TIMEOUT_S = 30.0


def main() -> int:
    rclpy.init()
    node = rclpy.create_node('vision_echo')
    received: dict[str, dict] = {}
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)

    def keep(topic: str):
        return lambda msg: received.setdefault(topic, to_plain(msg))

    node.create_subscription(Classification, 'classification', keep('classification'), reliable)
    node.create_subscription(Detection2DArray, 'detections', keep('detections'), reliable)
    node.create_subscription(LabelInfo, 'label_info', keep('label_info'), latched)
    deadline = time.monotonic() + TIMEOUT_S
    while len(received) < 3 and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    for topic, message in sorted(received.items()):
        print(json.dumps({'topic': topic, 'message': message}))
    node.destroy_node()
    rclpy.try_shutdown()
    missing = {'classification', 'detections', 'label_info'} - received.keys()
    if missing:
        print(f'timed out waiting for {sorted(missing)}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
