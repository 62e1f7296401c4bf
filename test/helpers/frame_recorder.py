"""
Record the frames and ground truth an image source publishes, then print them as JSON.

Usage: frame_recorder.py OUT_NPZ FRAMES TRUTHS [--compressed] [--timeout S]. Subscribes to
``image`` (or ``image/compressed``) and ``ground_truth``, both reliable, until FRAMES frames and
TRUTHS truths arrived. Prints one JSON object (frame and truth metadata, in arrival order)
and saves each frame's pixels (raw: uint8 (H, W, C) read straight from the message fields;
compressed: the encoded bytes) as frame_<i> in OUT_NPZ. Exit status 1 on timeout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import rclpy
from rclpy.qos import QoSProfile
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import CompressedImage
from sensor_msgs.msg import Image
from vision_msgs.msg import Classification


def _stamp(header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument('out')
    parser.add_argument('frames', type=int)
    parser.add_argument('truths', type=int)
    parser.add_argument('--compressed', action='store_true')
    parser.add_argument('--timeout', type=float, default=30.0)
    args = parser.parse_args()
    rclpy.init()
    node = rclpy.create_node('frame_recorder')
    frames, truths, pixels = [], [], {}

    def on_image(msg: Image) -> None:
        meta = {'stamp': _stamp(msg.header), 'frame_id': msg.header.frame_id,
                'width': msg.width, 'height': msg.height, 'encoding': msg.encoding,
                'step': msg.step, 'bytes': len(msg.data)}
        data = np.frombuffer(bytes(msg.data), np.uint8)
        channels = msg.step // msg.width
        pixels[f'frame_{len(frames)}'] = data.reshape(msg.height, msg.width, channels)
        frames.append(meta)

    def on_compressed(msg: CompressedImage) -> None:
        pixels[f'frame_{len(frames)}'] = np.frombuffer(bytes(msg.data), np.uint8)
        frames.append({'stamp': _stamp(msg.header), 'frame_id': msg.header.frame_id,
                       'format': msg.format})

    def on_truth(msg: Classification) -> None:
        truths.append({'stamp': _stamp(msg.header), 'frame_id': msg.header.frame_id,
                       'results': [[r.class_id, r.score] for r in msg.results]})

    qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    if args.compressed:
        node.create_subscription(CompressedImage, 'image/compressed', on_compressed, qos)
    else:
        node.create_subscription(Image, 'image', on_image, qos)
    node.create_subscription(Classification, 'ground_truth', on_truth, qos)
    deadline = time.monotonic() + args.timeout
    while (len(frames) < args.frames or len(truths) < args.truths) and (
            time.monotonic() < deadline):
        rclpy.spin_once(node, timeout_sec=0.05)
    node.destroy_node()
    rclpy.try_shutdown()
    np.savez(args.out, **pixels)
    print(json.dumps({'frames': frames, 'truths': truths}))
    if len(frames) < args.frames or len(truths) < args.truths:
        print(f'timed out: {len(frames)} frames, {len(truths)} truths', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
