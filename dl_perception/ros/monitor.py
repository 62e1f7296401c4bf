"""
``dl-perception monitor``: score a running classifier against ground truth, live.

Subscribes to a classifier's ``classification`` and an image source's ``ground_truth``
(both vision_msgs/Classification carrying the image's header), pairs them by header stamp
and frame_id, and prints accuracy, rate and latency while it runs and a summary at the end.
Class ids are compared as label names: a classifier's numeric ``class_id`` (the vision_msgs
convention) is mapped through the LabelInfo it publishes on ``label_info``.
The pairing and statistics live in ``Scoreboard`` (no rclpy); the node only feeds it.
"""

from __future__ import annotations

import argparse
from collections import OrderedDict
from dataclasses import dataclass
import json
from pathlib import Path
import sys
import time

import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy
from rclpy.qos import QoSProfile
from rclpy.qos import ReliabilityPolicy
from rclpy.task import Future
from std_msgs.msg import Header
from vision_msgs.msg import Classification
from vision_msgs.msg import LabelInfo

FrameKey = tuple[int, str]
MAX_PENDING = 10000
WATCH_PERIOD_S = 0.1


def frame_key(header: Header) -> FrameKey:
    """Return the key that pairs a result with its truth: (stamp in ns, frame_id)."""
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec, header.frame_id


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


def _percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


class Scoreboard:
    """
    Pair classifications with ground truth by frame key and keep the running statistics.

    Either message of a pair may come first; each waits (at most ``max_pending`` of a kind,
    the oldest counted unmatched when more arrive) until its partner does. Times are
    nanoseconds on the clock of the image stamps.
    """

    def __init__(self, max_pending: int = MAX_PENDING) -> None:
        self._max_pending = max_pending
        self._classifications: OrderedDict[FrameKey, str | None] = OrderedDict()
        self._truths: OrderedDict[FrameKey, str] = OrderedDict()
        self._dropped = {'classifications': 0, 'truths': 0}
        self._latencies_ms: list[float] = []
        self._received = 0
        self._first_ns = self._last_ns = 0
        self.frames = self.correct = 0
        self.per_class: dict[str, dict[str, int]] = {}

    def add_classification(self, key: FrameKey, class_id: str | None, received_ns: int) -> None:
        """Record a classifier's top-1 ``class_id`` for a frame, received at ``received_ns``."""
        self._latencies_ms.append((received_ns - key[0]) / 1e6)
        if not self._received:
            self._first_ns = received_ns
        self._received += 1
        self._last_ns = received_ns
        if key in self._truths:
            self._score(class_id, self._truths.pop(key))
        else:
            self._wait(self._classifications, key, class_id, 'classifications')

    def add_truth(self, key: FrameKey, class_id: str) -> None:
        """Record the true ``class_id`` of a frame."""
        if key in self._classifications:
            self._score(self._classifications.pop(key), class_id)
        else:
            self._wait(self._truths, key, class_id, 'truths')

    def _wait(self, pending: OrderedDict, key: FrameKey, class_id: str | None,
              kind: str) -> None:
        pending[key] = class_id
        if len(pending) > self._max_pending:
            pending.popitem(last=False)
            self._dropped[kind] += 1

    def _score(self, predicted: str | None, truth: str) -> None:
        hit = int(predicted == truth)
        self.frames += 1
        self.correct += hit
        counts = self.per_class.setdefault(truth, {'frames': 0, 'correct': 0})
        counts['frames'] += 1
        counts['correct'] += hit

    @property
    def accuracy(self) -> float | None:
        """Return the top-1 accuracy over paired frames, None before the first pair."""
        return self.correct / self.frames if self.frames else None

    @property
    def rate_hz(self) -> float | None:
        """Return the mean classification rate between the first and last one received."""
        span_s = (self._last_ns - self._first_ns) / 1e9
        return (self._received - 1) / span_s if self._received > 1 and span_s > 0 else None

    @property
    def unmatched_classifications(self) -> int:
        """Return how many classifications have (so far) no ground truth."""
        return len(self._classifications) + self._dropped['classifications']

    @property
    def unmatched_truths(self) -> int:
        """Return how many ground truths have (so far) no classification."""
        return len(self._truths) + self._dropped['truths']

    def summary(self) -> dict:
        """Return the statistics as a JSON-ready dict (None where nothing was measured)."""
        latencies = self._latencies_ms
        return {
            'frames': self.frames,
            'correct': self.correct,
            'accuracy': self.accuracy,
            'rate_hz': self.rate_hz,
            'latency_ms_p50': _percentile(latencies, 50),
            'latency_ms_p95': _percentile(latencies, 95),
            'latency_ms_max': max(latencies) if latencies else None,
            'unmatched_classifications': self.unmatched_classifications,
            'unmatched_truths': self.unmatched_truths,
            'per_class': {label: dict(counts) for label, counts in sorted(self.per_class.items())},
        }

    def status_line(self) -> str:
        """Return one line: pairs, accuracy, rate, latency p50/p95 and unpaired counts."""
        s = self.summary()
        return (f'frames {s["frames"]}  accuracy {_fmt(s["accuracy"], ".4f")}  '
                f'rate {_fmt(s["rate_hz"], ".1f")} Hz  latency p50 '
                f'{_fmt(s["latency_ms_p50"], ".1f")} ms p95 {_fmt(s["latency_ms_p95"], ".1f")} '
                f'ms  unpaired: {s["unmatched_classifications"]} classifications, '
                f'{s["unmatched_truths"]} truths')


def _fmt(value: float | None, spec: str) -> str:
    return '-' if value is None else format(value, spec)


def format_summary(summary: dict, reason: str) -> str:
    """Return the end-of-run report as text."""
    lines = [
        f'monitor summary ({reason})',
        f'  frames paired:     {summary["frames"]} ({summary["correct"]} correct)',
        f'  accuracy:          {_fmt(summary["accuracy"], ".4f")}',
        f'  mean rate:         {_fmt(summary["rate_hz"], ".2f")} Hz',
        f'  latency p50/p95/max: {_fmt(summary["latency_ms_p50"], ".1f")} / '
        f'{_fmt(summary["latency_ms_p95"], ".1f")} / {_fmt(summary["latency_ms_max"], ".1f")} ms',
        f'  classifications without truth: {summary["unmatched_classifications"]}',
        f'  truths without classification: {summary["unmatched_truths"]}',
    ]
    return '\n'.join(lines)


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
        qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self.create_subscription(Classification, options.classification_topic,
                                 self._on_classification, qos)
        self.create_subscription(Classification, options.truth_topic, self._on_truth, qos)
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
    rclpy.init()
    node = None
    try:
        node = MonitorNode(scoreboard, options)
        rclpy.spin_until_future_complete(node, node.done)
        reason = node.done.result() or reason
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RuntimeError:
        # A signal shut the context down under the executor (RCLError): a requested stop.
        if rclpy.ok():
            raise
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
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
