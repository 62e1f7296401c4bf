"""
Score live classifications against ground truth: pair them by frame, keep the statistics.

Pure bookkeeping (no ROS): the monitor feeds it from topics, a test or an offline replay
can feed it directly. A frame is keyed by (image stamp in ns, frame_id).
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

FrameKey = tuple[int, str]
MAX_PENDING = 10000


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
