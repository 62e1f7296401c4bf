"""
``dl-perception monitor``: score a running classifier against ground truth, live.

Subscribes to a classifier's ``classification`` and an image source's ``ground_truth``
(both vision_msgs/Classification carrying the image's header), pairs them by header stamp
and frame_id, and prints accuracy, rate and latency while it runs and a summary at the end.
Class ids are compared as label names: a classifier's numeric ``class_id`` (the vision_msgs
convention) is mapped through the LabelInfo it publishes on ``label_info``.
The pairing and statistics live in ``inference.scoreboard`` (no rclpy); the node only feeds it.

Ground truth is subscribed to only once a classifier's publisher is matched: a source that
waits for its subscribers (``image_source_node``'s ``wait_for_subscribers``) then starts only
when the monitor can see results too. Subscribed at once, the demo's first result was
sometimes sent before the monitor had matched the classifier, and lost (299 of 300 paired).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
import json
from pathlib import Path
import sys
import time

from dl_perception.inference.scoreboard import format_summary
from dl_perception.inference.scoreboard import FrameKey
from dl_perception.inference.scoreboard import Scoreboard
from dl_perception.ros.spinning import run_node
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy
from rclpy.qos import QoSProfile
from rclpy.qos import ReliabilityPolicy
from rclpy.task import Future
from rclpy.time import Time
from std_msgs.msg import Header
from vision_msgs.msg import Classification
from vision_msgs.msg import LabelInfo

WATCH_PERIOD_S = 0.1


def frame_key(header: Header) -> FrameKey:
    """Return the key that pairs a result with its truth: (stamp in ns, frame_id)."""
    return Time.from_msg(header.stamp).nanoseconds, header.frame_id


def top1(msg: Classification, names: dict[str, str] | None = None) -> str | None:
    """
    Return the top result's class (the first of equal scores) as a label name, or None.

    :param names: class_id -> label name, from LabelInfo; ids not in it are names already.
    """
    if not msg.results:
        return None
    class_id = max(msg.results, key=lambda result: result.score).class_id
    return (names or {}).get(class_id, class_id)


def label_names(msg: LabelInfo) -> dict[str, str]:
    """Return LabelInfo's class map as class_id text -> label name."""
    return {str(item.class_id): item.class_name for item in msg.class_map}


@dataclass(frozen=True)
class MonitorOptions:
    """What to listen to and when to stop (0 disables frames, duration and idle_timeout)."""

    classification_topic: str = 'classification'
    truth_topic: str = 'ground_truth'
    label_info_topic: str = 'label_info'
    frames: int = 0
    duration: float = 0.0
    idle_timeout: float = 10.0
    print_every: float = 2.0
    json: Path | None = None

    def __post_init__(self) -> None:
        for name in ('frames', 'duration', 'idle_timeout'):
            if getattr(self, name) < 0:
                raise ValueError(f'{name} must be >= 0 (0 disables it), got {getattr(self, name)}')
        if not self.print_every > 0:
            raise ValueError(f'print_every must be > 0 seconds, got {self.print_every}')
        if not (self.classification_topic and self.truth_topic and self.label_info_topic):
            raise ValueError('topic names must not be empty')


class MonitorNode(Node):
    """Feed a Scoreboard from the two topics; complete ``done`` with the reason to stop."""

    def __init__(self, scoreboard: Scoreboard, options: MonitorOptions) -> None:
        super().__init__('monitor')
        self.scoreboard, self.options = scoreboard, options
        self.done = Future()
        self._qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self._classifications = self.create_subscription(
            Classification, options.classification_topic, self._on_classification, self._qos)
        self._truths = None  # once a classifier is heard: see _watch
        self._names: dict[str, str] = {}
        self.create_subscription(LabelInfo, options.label_info_topic, self._on_label_info,
                                 QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                            durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self._started = time.monotonic()
        self._last_classification: float | None = None
        self.create_timer(options.print_every, self._print_status)
        self.create_timer(WATCH_PERIOD_S, self._watch)
        print(f'monitor: pairing {self.resolve_topic_name(options.classification_topic)} with '
              f'{self.resolve_topic_name(options.truth_topic)}', flush=True)

    def _on_label_info(self, msg: LabelInfo) -> None:
        self._names = label_names(msg)

    def _on_classification(self, msg: Classification) -> None:
        self._last_classification = time.monotonic()
        self.scoreboard.add_classification(frame_key(msg.header), top1(msg, self._names),
                                           self.get_clock().now().nanoseconds)
        self._check_frames()

    def _on_truth(self, msg: Classification) -> None:
        self.scoreboard.add_truth(frame_key(msg.header), top1(msg) or '')
        self._check_frames()

    def _check_frames(self) -> None:
        frames = self.options.frames
        if frames and self.scoreboard.frames >= frames:
            self._stop(f'{frames} frames paired')

    def _watch(self) -> None:
        now, options = time.monotonic(), self.options
        if self._truths is None and self._classifications.get_publisher_count():
            self._truths = self.create_subscription(Classification, options.truth_topic,
                                                    self._on_truth, self._qos)
            print(f'monitor: {self._classifications.topic_name} has a publisher; listening '
                  f'to {self._truths.topic_name}', flush=True)
        if options.duration and now - self._started >= options.duration:
            self._stop(f'{options.duration:g} s elapsed')
        elif (options.idle_timeout and self._last_classification is not None
              and now - self._last_classification >= options.idle_timeout):
            self._stop(f'no classification for {options.idle_timeout:g} s')

    def _stop(self, reason: str) -> None:
        if not self.done.done():
            self.done.set_result(reason)

    def _print_status(self) -> None:
        print(self.scoreboard.status_line(), flush=True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``monitor``."""
    parser.add_argument('--classification-topic', default='classification',
                        help='the classifier output (vision_msgs/Classification)')
    parser.add_argument('--label-info-topic', default='label_info',
                        help="the classifier's class map (vision_msgs/LabelInfo), to name its "
                             'numeric class ids')
    parser.add_argument('--truth-topic', default='ground_truth',
                        help='the ground truth (vision_msgs/Classification), e.g. from '
                             'image_source_node')
    parser.add_argument('--frames', type=int, default=0,
                        help='stop after this many paired frames (default: no limit)')
    parser.add_argument('--duration', type=float, default=0.0,
                        help='stop after this many seconds (default: no limit)')
    parser.add_argument('--idle-timeout', type=float, default=10.0,
                        help='stop when no classification came for this many seconds after the '
                             'first one (default: 10; 0 waits forever)')
    parser.add_argument('--print-every', type=float, default=2.0,
                        help='seconds between live status lines (default: 2)')
    parser.add_argument('--json', type=Path, default=None,
                        help='also write the summary to this JSON file')


def run(args: argparse.Namespace) -> int:
    """Monitor until a stop condition or Ctrl-C; return 0 when frames were paired, else 1."""
    options = MonitorOptions(
        classification_topic=args.classification_topic, truth_topic=args.truth_topic,
        label_info_topic=args.label_info_topic,
        frames=args.frames, duration=args.duration, idle_timeout=args.idle_timeout,
        print_every=args.print_every, json=args.json)
    scoreboard = Scoreboard()
    reason = 'interrupted'

    def spin(node: MonitorNode, executor: SingleThreadedExecutor) -> None:
        nonlocal reason
        executor.spin_until_future_complete(node.done)
        reason = node.done.result() or reason

    status = run_node(lambda: MonitorNode(scoreboard, options), name='monitor', spin=spin)
    if status:
        return status
    summary = scoreboard.summary()
    print(format_summary(summary, reason), flush=True)
    if options.json is not None:
        options.json.parent.mkdir(parents=True, exist_ok=True)
        options.json.write_text(json.dumps(summary, indent=2) + '\n')
    return 0 if summary['frames'] else 1


def main(args: list[str] | None = None) -> int:
    """Run ``monitor`` on its own: ``python -m dl_perception.ros.monitor [options]``."""
    parser = argparse.ArgumentParser(prog='monitor', description=__doc__.strip().splitlines()[0])
    add_arguments(parser)
    options = parser.parse_args(args)
    try:
        return run(options)
    except ValueError as error:
        parser.error(str(error))


if __name__ == '__main__':
    sys.exit(main())
