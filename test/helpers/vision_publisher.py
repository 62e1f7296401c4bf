"""
Publish sample vision_msgs built by dl_perception.ros.vision_messages until stopped.

Usage: vision_publisher.py SAMPLE_JSON. LabelInfo is published once, transient-local, before
any subscriber exists; Classification and Detection2DArray are published at 20 Hz, reliable.
"""

from __future__ import annotations

import json
import sys

from dl_perception.ros import vision_messages
from dl_perception.ros.spinning import run_node
import rclpy
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy
from rclpy.qos import QoSProfile
from rclpy.qos import ReliabilityPolicy
from std_msgs.msg import Header
from vision_msgs.msg import Classification
from vision_msgs.msg import Detection2DArray
from vision_msgs.msg import LabelInfo


def build_messages(sample: dict) -> tuple[Classification, Detection2DArray, LabelInfo]:
    """Build the three messages from the sample description."""
    header = Header(frame_id=sample['frame_id'])
    header.stamp.sec, header.stamp.nanosec = sample['stamp']
    scored = [tuple(pair) for pair in sample['scored_labels']]
    detections = [
        vision_messages.detection_msg(header, vision_messages.Box(*d['box']),
                                      [tuple(p) for p in d['scored_labels']], d['id'])
        for d in sample['detections']
    ]
    return (vision_messages.classification_msg(header, scored),
            vision_messages.detection_array_msg(header, detections),
            vision_messages.label_info_msg(header, sample['labels'], sample['threshold']))


def build() -> Node:
    classification, detections, label_info = build_messages(json.loads(sys.argv[1]))
    node = rclpy.create_node('vision_publisher')
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    node.create_publisher(LabelInfo, 'label_info', latched).publish(label_info)
    classification_pub = node.create_publisher(Classification, 'classification', reliable)
    detections_pub = node.create_publisher(Detection2DArray, 'detections', reliable)

    def publish() -> None:
        classification_pub.publish(classification)
        detections_pub.publish(detections)

    node.create_timer(0.05, publish)
    print('publishing', flush=True)
    return node


if __name__ == '__main__':
    sys.exit(run_node(build))
