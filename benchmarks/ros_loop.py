"""
Drive a classifier node over ROS 2 from the benchmark process: frames out, results back.

Frames are prebuilt ``sensor_msgs/Image`` messages (bgr8); only the header changes per send.
Results are matched to frames by header stamp; latency runs from the stamp to the arrival of
the result in this process.
"""

from __future__ import annotations

from collections.abc import Iterable
import time

from dl_perception.ros.image_conversion import image_to_msg
import numpy as np
import rclpy
from rclpy.qos import QoSProfile
from rclpy.qos import ReliabilityPolicy
from rclpy.time import Time
from sensor_msgs.msg import Image
from vision_msgs.msg import Classification

RESULT_TIMEOUT_S = 10.0
# While waiting for a node to serve, a frame is resent this often (its first runs may be slow).
READY_RETRY_S = 2.0
# spin_once returns as soon as a result arrives; a short timeout would only make this process
# poll, taking CPU from the node it measures.
SPIN_TIMEOUT_S = 0.05


class RosLoop:
    """Publishes frames to ``/<ns>/image`` and collects ``/<ns>/classification``."""

    def __init__(self, frames: list[np.ndarray], namespaces: Iterable[str]) -> None:
        if not rclpy.ok():
            rclpy.init()
        self.node = rclpy.create_node('bench_driver')
        self.messages = [image_to_msg(frame, 'bgr8') for frame in frames]
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.publishers = {ns: self.node.create_publisher(Image, f'/{ns}/image', qos)
                           for ns in namespaces}
        self.arrived: dict[int, float] = {}
        for ns in self.publishers:
            self.node.create_subscription(Classification, f'/{ns}/classification',
                                          self._on_result, qos)
        self._sent = 0

    def _on_result(self, msg: Classification) -> None:
        self.arrived[Time.from_msg(msg.header.stamp).nanoseconds] = time.time_ns()

    def _send(self, namespace: str) -> int:
        message = self.messages[self._sent % len(self.messages)]
        self._sent += 1
        stamp = time.time_ns()
        message.header.stamp = Time(nanoseconds=stamp).to_msg()
        message.header.frame_id = str(self._sent)
        self.publishers[namespace].publish(message)
        return stamp

    def _wait(self, stamps: set[int], left: int, timeout: float = RESULT_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while len(stamps - self.arrived.keys()) > left:
            if time.monotonic() > deadline:
                raise TimeoutError(f'no result within {timeout} s')
            rclpy.spin_once(self.node, timeout_sec=SPIN_TIMEOUT_S)

    def wait_until_serving(self, namespace: str, timeout: float = 60.0) -> None:
        """
        Wait until the node is matched both ways, then send frames until one comes back.

        Matching first: a frame sent before discovery finished, or a result published before
        this process's subscription matched, is lost for good, and a driver that only resent
        every RESULT_TIMEOUT_S could run out of time against a node that was serving.
        """
        deadline = time.monotonic() + timeout
        topic = f'/{namespace}/classification'
        subscription = next(s for s in self.node.subscriptions if s.topic_name == topic)
        while (self.publishers[namespace].get_subscription_count() == 0
               or subscription.get_publisher_count() == 0):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f'/{namespace} never matched: its image subscribers '
                    f'{self.publishers[namespace].get_subscription_count()}, result publishers '
                    f'{subscription.get_publisher_count()}')
            rclpy.spin_once(self.node, timeout_sec=SPIN_TIMEOUT_S)
        while time.monotonic() < deadline:
            stamp = self._send(namespace)
            try:
                self._wait({stamp}, 0, timeout=READY_RETRY_S)
                return
            except TimeoutError:
                continue
        raise TimeoutError(f'/{namespace} matched but never answered')

    def throughput(self, namespace: str, count: int, in_flight: int = 2) -> tuple[float, int]:
        """
        Return results per second and frames dropped, keeping ``in_flight`` frames outstanding.

        The node keeps only the newest waiting frame, so a frame can be replaced before it is
        taken; a frame still outstanding when a later one's result arrives was dropped.
        """
        outstanding: list[int] = []
        received = dropped = 0
        started = time.perf_counter()
        deadline = time.monotonic() + RESULT_TIMEOUT_S * count
        while received < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f'/{namespace} stopped answering')
            done = [stamp for stamp in outstanding if stamp in self.arrived]
            if done:
                newest = max(done)
                dropped += sum(1 for s in outstanding if s < newest and s not in self.arrived)
                received += len(done)
                outstanding = [s for s in outstanding if s > newest]
            if len(outstanding) < in_flight:
                outstanding.append(self._send(namespace))
            else:
                rclpy.spin_once(self.node, timeout_sec=SPIN_TIMEOUT_S)
        return received / (time.perf_counter() - started), dropped

    def latencies(self, namespace: str, count: int) -> list[float]:
        """Stamp-to-result seconds, one frame at a time."""
        samples = []
        for _ in range(count):
            stamp = self._send(namespace)
            self._wait({stamp}, 0)
            samples.append((self.arrived[stamp] - stamp) / 1e9)
        return samples

    def close(self) -> None:
        """Destroy the node and shut rclpy down."""
        self.node.destroy_node()
        rclpy.try_shutdown()
