"""
An upstream vision_msgs consumer: what another team's node on a robot would be.

Usage: upstream_consumer.py [TIMEOUT_S] [RESULTS]. Run it in an environment that holds the
upstream vision_msgs only (fixture ``upstream_vision_msgs_env``); it imports nothing of
dl_perception. It subscribes with the upstream types to classification, detections, label_info
and vision_info, waits until each has a publisher of another node and the latched LabelInfo and
VisionInfo have arrived, then prints one JSON object: where vision_msgs came from, and per
topic the publishers' type hashes and its own subscription's.

With RESULTS > 0 it prints 'ready' once the graph and the latched messages are there, then
waits for that many Classifications and adds them to the report under 'results', each as its
header and hypotheses: the class_id as received and the label it names through LabelInfo's
class_map (VisionClass.class_id -> class_name), or null where class_id is no decimal id of
the map.
"""

from __future__ import annotations

import json
import sys
import time

import rclpy
from rclpy.qos import DurabilityPolicy
from rclpy.qos import QoSProfile
from rclpy.qos import ReliabilityPolicy
import vision_msgs
from vision_msgs.msg import Classification
from vision_msgs.msg import Detection2DArray
from vision_msgs.msg import LabelInfo
from vision_msgs.msg import VisionInfo

NODE_NAME = 'upstream_consumer'
TOPICS = {'/classification': Classification, '/detections': Detection2DArray,
          '/label_info': LabelInfo, '/vision_info': VisionInfo}
LATCHED = ('/label_info', '/vision_info')


def hash_text(info) -> str:
    """Write an endpoint's type hash as ROS prints it (RIHS01_<hex>)."""
    type_hash = info.topic_type_hash
    return f'RIHS{type_hash.version:02d}_{bytes(type_hash.value).hex()}'


def mapped(message: Classification, label_info: LabelInfo | None) -> dict:
    """Describe one Classification with each class_id mapped through the class map."""
    names = {vision_class.class_id: vision_class.class_name
             for vision_class in (label_info.class_map if label_info else [])}
    stamp = message.header.stamp
    return {
        'header': {'stamp': {'sec': stamp.sec, 'nanosec': stamp.nanosec},
                   'frame_id': message.header.frame_id},
        'results': [{'class_id': hypothesis.class_id, 'score': hypothesis.score,
                     'label': (names.get(int(hypothesis.class_id))
                               if hypothesis.class_id.isdecimal() else None)}
                    for hypothesis in message.results],
    }


def main() -> int:
    """Subscribe, wait for the graph and the latched messages, print the report."""
    timeout = float(sys.argv[1]) if len(sys.argv) > 1 else 30.0
    wanted = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    rclpy.init()
    node = rclpy.create_node(NODE_NAME)
    received: dict[str, object] = {}
    classifications: list[Classification] = []

    def keep(msg, topic: str) -> None:
        received.setdefault(topic, msg)
        if topic == '/classification':
            classifications.append(msg)

    for topic, kind in TOPICS.items():
        durability = (DurabilityPolicy.TRANSIENT_LOCAL if topic in LATCHED
                      else DurabilityPolicy.VOLATILE)
        depth = 100 if topic == '/classification' else 1
        qos = QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE,
                         durability=durability)
        node.create_subscription(kind, topic, lambda msg, t=topic: keep(msg, t), qos)

    def publishers(topic: str) -> list:
        return [info for info in node.get_publishers_info_by_topic(topic)
                if info.node_name != NODE_NAME]

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not (
            all(publishers(topic) for topic in TOPICS) and all(t in received for t in LATCHED)):
        rclpy.spin_once(node, timeout_sec=0.1)
    if wanted:
        print('ready', flush=True)
        while time.monotonic() < deadline and len(classifications) < wanted:
            rclpy.spin_once(node, timeout_sec=0.1)
    report = {'vision_msgs': vision_msgs.__file__, 'topics': {}}
    for topic in TOPICS:
        own = [info for info in node.get_subscriptions_info_by_topic(topic)
               if info.node_name == NODE_NAME]
        report['topics'][topic] = {
            'publishers': [hash_text(info) for info in publishers(topic)],
            'subscriber': hash_text(own[0]) if own else None,
        }
    label_info = received.get('/label_info')
    report['labels'] = ([c.class_name for c in label_info.class_map] if label_info else None)
    if wanted:
        report['results'] = [mapped(message, label_info) for message in classifications]
    print(json.dumps(report), flush=True)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
