"""
``python -m benchmarks.frame_flood``: publish prebuilt frames at a fixed rate, open loop.

The overload benchmark's camera, in a process of its own so that its publishing does not
compete for the GIL with whatever counts the results. Frames are Fashion-MNIST-sized noise
unless ``--size`` says otherwise; only the stamp changes per send. Prints one JSON line
with what it sent.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import sys
import time

from dl_perception.ros.image_conversion import image_to_msg
import numpy as np
import rclpy
from rclpy.qos import qos_profile_sensor_data
from rclpy.time import Time
from sensor_msgs.msg import Image

FRAMES = 16
HANG_MARGIN_S = 20.0


def flood(topic: str, rate_hz: float, seconds: float, size: int, wait_s: float) -> dict:
    """
    Publish for ``seconds`` at ``rate_hz`` once a subscriber matched (or ``wait_s`` ran).

    Nothing is torn down: with ``FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA`` Fast DDS was seen to
    hang in ``destroy_node`` after a flood (3 of 7 runs here), so the process ends with
    ``os._exit`` once it has printed what it sent.
    """
    rclpy.init()
    node = rclpy.create_node('frame_flood')
    publisher = node.create_publisher(Image, topic, qos_profile_sensor_data)
    generator = np.random.default_rng(0)
    messages = [image_to_msg(generator.integers(0, 256, (size, size), np.uint8), 'mono8')
                for _ in range(FRAMES)]
    deadline = time.monotonic() + wait_s
    while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    period = 1.0 / rate_hz
    started = next_send = time.monotonic()
    sent = 0
    while next_send - started < seconds:
        delay = next_send - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        message = messages[sent % FRAMES]
        message.header.stamp = Time(nanoseconds=time.time_ns()).to_msg()
        publisher.publish(message)
        sent += 1
        next_send += period
    elapsed = time.monotonic() - started
    return {'sent': sent, 'seconds': elapsed, 'rate_hz': sent / elapsed}


def main(argv: list[str] | None = None) -> int:
    """Parse the options, flood, print the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--topic', default='image')
    parser.add_argument('--rate', type=float, required=True, help='frames per second')
    parser.add_argument('--seconds', type=float, default=5.0)
    parser.add_argument('--size', type=int, default=28, help='square mono8 frame side')
    parser.add_argument('--wait', type=float, default=30.0,
                        help='seconds to wait for a subscriber before sending anyway')
    options = parser.parse_args(argv)
    # A publisher stuck in the middleware shows where, and ends, instead of hanging the run.
    faulthandler.dump_traceback_later(options.wait + options.seconds + HANG_MARGIN_S, exit=True)
    print(json.dumps(flood(options.topic, options.rate, options.seconds, options.size,
                           options.wait)), flush=True)
    sys.stderr.flush()
    os._exit(0)


if __name__ == '__main__':
    sys.exit(main())
