"""
One of several processes that must all find each other, as the demo's processes must.

    discovery_peer.py NAME OTHER[,OTHER...] WAIT_S START_AT

Joins the graph at the wall-clock time START_AT (seconds since the epoch), so that the peers
start as nearly together as a launch file's processes do. Publishes ``peer_NAME`` and
subscribes to the others' topics (reliable) until it has heard every other peer or WAIT_S
passed; keeps publishing 1.5 s more so the others hear it too. Prints ``NAME missed: a,b`` (or
``-``) and exits 1 when it missed anyone. It is torn down as the
nodes are (``spinning.tear_down``): Fast DDS's teardown deadlock ends it with status 1 and the
stacks, after the line that says what it heard.
"""

from __future__ import annotations

import sys
import time

from dl_perception.ros.spinning import tear_down
import rclpy
from rclpy.qos import QoSProfile
from rclpy.qos import ReliabilityPolicy
from std_msgs.msg import String


def main(name: str, others: list[str], wait_s: float, start_at: float) -> int:
    time.sleep(max(0.0, start_at - time.time()))
    rclpy.init()
    node = rclpy.create_node(f'peer_{name}')
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    publisher = node.create_publisher(String, f'peer_{name}', qos)
    heard: set[str] = set()
    for other in others:
        node.create_subscription(String, f'peer_{other}',
                                 lambda message: heard.add(message.data), qos)

    def publish_until(done, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not done():
            publisher.publish(String(data=name))
            rclpy.spin_once(node, timeout_sec=0.1)

    publish_until(lambda: heard >= set(others), wait_s)
    publish_until(lambda: False, 1.5)
    missed = sorted(set(others) - heard)
    print(f'{name} missed: {",".join(missed) or "-"}', flush=True)
    tear_down(node)
    return 1 if missed else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1], sys.argv[2].split(','), float(sys.argv[3]), float(sys.argv[4])))
