"""
Replay a dataset split, an image folder, a video file or a camera as a ROS 2 camera stream.

The ``image_source`` node publishes one frame per timer tick on ``image`` (or
``image/compressed``) and, for a labelled source, the frame's label on ``ground_truth`` as a
vision_msgs Classification with the frame's header, so a classifier can be scored live.
``render_frame`` is the pure function that turns a source image into the frame sent, so an
offline evaluation can reproduce the exact pixels.
"""

from __future__ import annotations

import sys
import time

import cv2
from dl_perception.datasets.frame_sources import CaptureFrames
from dl_perception.datasets.frame_sources import IndexedFrames
from dl_perception.datasets.frame_sources import open_frames
from dl_perception.datasets.frame_sources import render_frame
from dl_perception.datasets.frame_sources import SourceFrame
from dl_perception.datasets.frame_sources import SourceOptions
from dl_perception.ros.image_conversion import compressed_msg
from dl_perception.ros.image_conversion import image_to_msg
from dl_perception.ros.image_source_parameters import PARAMETERS
from dl_perception.ros.image_source_parameters import Settings
from dl_perception.ros.spinning import run_node
from dl_perception.ros.vision_messages import classification_msg
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rclpy.qos import ReliabilityPolicy
from rclpy.task import Future
from rclpy.time import Time
from sensor_msgs.msg import CompressedImage
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from vision_msgs.msg import Classification

NODE_NAME = 'image_source'
RATE_LOG_PERIOD_S = 5.0
ACK_TIMEOUT_S = 5.0
# After every subscriber is matched on the writer's side, wait this long for the readers'
# side: cheap at start-up; with 0.3 s a recorder missed its first frames on a loaded machine.
MATCH_SETTLE_S = 1.0
_FROM_BGR = {'bgr8': None, 'rgb8': cv2.COLOR_BGR2RGB, 'mono8': cv2.COLOR_BGR2GRAY}


class ImageSourceNode(Node):
    """Publish the frames of a source at a fixed rate, with ground truth when labelled."""

    def __init__(self, **kwargs) -> None:
        # Set first: rclpy destroys a node whose constructor failed, calling destroy_node.
        self.frames: IndexedFrames | CaptureFrames | None = None
        super().__init__(NODE_NAME, **kwargs)
        self.settings = settings = Settings(**PARAMETERS.declare(self))
        PARAMETERS.warn_unknown_overrides(self)  # ROS would ignore a misspelt one silently
        self.frames = open_frames(SourceOptions(
            settings.source, settings.dataset_root, settings.loop, settings.shuffle,
            settings.seed, settings.start_index))
        self.done = Future()
        reliability = (ReliabilityPolicy.RELIABLE if settings.reliability == 'reliable'
                       else ReliabilityPolicy.BEST_EFFORT)
        image_qos = QoSProfile(depth=10, reliability=reliability)
        if settings.compressed:
            self._image_pub = self.create_publisher(CompressedImage, 'image/compressed',
                                                    image_qos)
        else:
            self._image_pub = self.create_publisher(Image, 'image', image_qos)
        self._frame_pubs = [self._image_pub]
        self._truth_pub = None
        if self.frames.labelled:
            self._truth_pub = self.create_publisher(
                Classification, 'ground_truth',
                QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
            self._frame_pubs.append(self._truth_pub)
        self._created = time.monotonic()
        self._started = self._finished = False
        self._matched_at: float | None = None
        self._sent = self._skipped = self._last_stamp_ns = 0
        self._window = (self._created, 0)
        self._timer = self.create_timer(1.0 / settings.rate_hz, self._on_tick)
        self.create_timer(RATE_LOG_PERIOD_S, self._log_rate)
        self.get_logger().info(
            f'publishing {settings.source} on {self._image_pub.topic_name} at '
            f'{settings.rate_hz:g} Hz ({settings.width}x{settings.height}, '
            f'{settings.compression if settings.compressed else settings.encoding})'
            + (f', ground truth on {self._truth_pub.topic_name}' if self._truth_pub else ''))

    @property
    def sent(self) -> int:
        """Return how many frames were published so far."""
        return self._sent

    def _subscribers_ready(self) -> bool:
        """Return True when enough subscriber nodes are known and all of them are matched."""
        nodes = set()
        for publisher in self._frame_pubs:
            infos = self.get_subscriptions_info_by_topic(publisher.topic_name)
            if publisher.get_subscription_count() < len(infos):
                return False
            nodes.update((info.node_namespace, info.node_name) for info in infos)
        return len(nodes) >= self.settings.wait_for_subscribers

    def _ready(self) -> bool:
        """Return True once the startup delay is over and subscribers are ready (or late)."""
        if self._started:
            return True
        waited = time.monotonic() - self._created
        if waited < self.settings.startup_delay:
            return False
        if not self._subscribers_ready():
            self._matched_at = None
            if waited < self.settings.wait_timeout:
                return False
            self.get_logger().warning(
                f'starting after {waited:.1f} s without the {self.settings.wait_for_subscribers} '
                f'subscriber node(s) asked for')
        elif self.settings.wait_for_subscribers:
            # A writer sees a reader matched slightly before the reader has matched the
            # writer; a sample sent in between is lost even with reliable QoS.
            now = time.monotonic()
            self._matched_at = self._matched_at or now
            if now - self._matched_at < MATCH_SETTLE_S:
                return False
        self._started = True
        self._window = (time.monotonic(), 0)
        return True

    def _next_stamp(self) -> Time:
        """Return the clock's now, nudged forward when needed so stamps strictly increase."""
        now = max(self.get_clock().now().nanoseconds, self._last_stamp_ns + 1)
        self._last_stamp_ns = now
        return Time(nanoseconds=now, clock_type=self.get_clock().clock_type)

    def _on_tick(self) -> None:
        if self._finished or not self._ready():
            return
        try:
            frame = self.frames.read_next()
        except ValueError as error:
            self._skipped += 1
            self.get_logger().warning(f'skipping an unreadable frame: {error}')
            return
        if frame is None:
            self._finish()
            return
        self._publish(frame)
        if self._sent == self.settings.max_frames:
            self._finish()

    def _publish(self, frame: SourceFrame) -> None:
        """Render the frame, publish it and then its ground truth under the same header."""
        settings = self.settings
        header = Header(stamp=self._next_stamp().to_msg(), frame_id=settings.frame_id)
        bgr = render_frame(frame.image, frame.order, settings.width, settings.height)
        code = _FROM_BGR[settings.encoding]
        if settings.compressed:
            grey = cv2.cvtColor(bgr, code) if settings.encoding == 'mono8' else bgr
            msg = compressed_msg(grey, settings.compression, settings.jpeg_quality, header)
        else:
            msg = image_to_msg(bgr if code is None else cv2.cvtColor(bgr, code),
                               settings.encoding, header)
        self._image_pub.publish(msg)
        if self._truth_pub is not None and frame.label is not None:
            self._truth_pub.publish(classification_msg(header, [(frame.label, 1.0)]))
        self._sent += 1

    def _finish(self) -> None:
        """Stop sending, let reliable subscribers acknowledge, then complete ``done``."""
        self._finished = True
        self._timer.cancel()
        skipped = f', skipped {self._skipped} unreadable' if self._skipped else ''
        self.get_logger().info(f'done: sent {self._sent} frames{skipped}')
        for publisher in self._frame_pubs:
            if not publisher.wait_for_all_acked(Duration(seconds=ACK_TIMEOUT_S)):
                self.get_logger().warning(
                    f'some subscribers of {publisher.topic_name} did not acknowledge the last '
                    f'frames within {ACK_TIMEOUT_S:g} s')
        if self.settings.exit_when_done:
            self.done.set_result(self._sent)

    def _log_rate(self) -> None:
        if not self._started or self._finished:
            return
        since, sent_then = self._window
        now = time.monotonic()
        if now - since < RATE_LOG_PERIOD_S / 2:
            return  # just started: wait for a window long enough to mean something
        self._window = (now, self._sent)
        self.get_logger().info(f'sent {self._sent} frames, '
                               f'{(self._sent - sent_then) / (now - since):.1f} Hz')

    def destroy_node(self) -> None:
        """Release the frame source, then the node."""
        if self.frames is not None:
            self.frames.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Run the image_source node; return 0 when done or stopped, 1 when it cannot start."""
    def log_stop(node: ImageSourceNode) -> None:
        node.get_logger().info(f'stopped: sent {node.sent} frames')

    return run_node(ImageSourceNode, args, name=NODE_NAME,
                    spin=lambda node, executor: executor.spin_until_future_complete(node.done),
                    on_interrupt=log_stop)


if __name__ == '__main__':
    sys.exit(main())
