"""
What the classifier node has been doing, turned into a /diagnostics status once per period.

Counters and latency samples are updated from the subscription callbacks and the worker
thread (hence the lock) and read by the diagnostics timer.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
import threading
import time

from diagnostic_msgs.msg import DiagnosticStatus
from diagnostic_msgs.msg import KeyValue
import numpy as np

RATE_WINDOW_S = 5.0
LATENCY_SAMPLES = 500


class _Rate:
    """Events per second over the last RATE_WINDOW_S seconds."""

    def __init__(self) -> None:
        self._times: deque[float] = deque()

    def add(self, now: float) -> None:
        self._times.append(now)

    def per_second(self, now: float) -> float:
        while self._times and self._times[0] < now - RATE_WINDOW_S:
            self._times.popleft()
        return len(self._times) / RATE_WINDOW_S


class NodeStatistics:
    """Counts, rates and latencies of one node, safe to update from several threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.received: dict[Hashable, int] = {}
        self.rejected: dict[Hashable, int] = {}
        self.published = 0
        self.last_rejection = ''
        self.last_input = 0.0
        self._input_rates: dict[Hashable, _Rate] = {}
        self._output_rate = _Rate()
        self._latency_ms: deque[float] = deque(maxlen=LATENCY_SAMPLES)
        self._inference_ms: deque[float] = deque(maxlen=LATENCY_SAMPLES)
        self._rejected_at_last_report = 0

    def on_received(self, topic: Hashable) -> None:
        """Count an incoming message."""
        now = time.monotonic()
        with self._lock:
            self.received[topic] = self.received.get(topic, 0) + 1
            self._input_rates.setdefault(topic, _Rate()).add(now)
            self.last_input = now

    def on_rejected(self, topic: Hashable, reason: str) -> None:
        """Count a message that could not be used, and remember why."""
        with self._lock:
            self.rejected[topic] = self.rejected.get(topic, 0) + 1
            self.last_rejection = f'{topic}: {reason}'

    def on_published(self, latency_ms: float) -> None:
        """Count a result; ``latency_ms`` runs from the image stamp to publication."""
        with self._lock:
            self.published += 1
            self._output_rate.add(time.monotonic())
            self._latency_ms.append(latency_ms)

    def on_inference(self, milliseconds: float) -> None:
        """Record the time one batch spent in the classifier (preprocessing included)."""
        with self._lock:
            self._inference_ms.append(milliseconds)

    def report(self, dropped: dict[Hashable, int]) -> dict[str, str]:
        """Return the current figures as diagnostic key/value strings."""
        now = time.monotonic()

        def percentiles(samples: deque) -> str:
            if not samples:
                return 'n/a'
            p50, p95 = np.percentile(np.asarray(samples), [50, 95])
            return f'{p50:.1f} / {p95:.1f}'

        with self._lock:
            values = {
                f'input rate {topic} (Hz)': f'{rate.per_second(now):.1f}'
                for topic, rate in sorted(self._input_rates.items(), key=lambda i: str(i[0]))}
            values.update({
                'output rate (Hz)': f'{self._output_rate.per_second(now):.1f}',
                'latency stamp->publish p50 / p95 (ms)': percentiles(self._latency_ms),
                'inference p50 / p95 (ms)': percentiles(self._inference_ms),
                'received': str(sum(self.received.values())),
                'published': str(self.published),
                'dropped (newer frame arrived)': str(sum(dropped.values())),
                'rejected (malformed)': str(sum(self.rejected.values())),
                'last rejection': self.last_rejection or 'none',
            })
        return values

    def new_rejections(self) -> int:
        """Return how many messages were rejected since the previous call."""
        with self._lock:
            total = sum(self.rejected.values())
            fresh, self._rejected_at_last_report = (
                total - self._rejected_at_last_report, total)
            return fresh

    def seconds_since_input(self) -> float:
        """Return the seconds since the last message arrived (inf if none ever did)."""
        with self._lock:
            return time.monotonic() - self.last_input if self.last_input else float('inf')


def diagnostic_status(name: str, hardware_id: str, level: bytes, message: str,
                      values: dict[str, str]) -> DiagnosticStatus:
    """Build one DiagnosticStatus from plain values."""
    return DiagnosticStatus(level=level, name=name, message=message, hardware_id=hardware_id,
                            values=[KeyValue(key=k, value=v) for k, v in values.items()])
