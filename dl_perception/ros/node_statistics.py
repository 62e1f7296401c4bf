"""
What the classifier node has been doing, turned into a /diagnostics status once per period.

Counters, event times and latency samples are updated from the subscription callbacks and the
worker thread (hence the lock) and read by the diagnostics timer. The clock is a parameter so
that the arithmetic is tested without waiting.
"""

from __future__ import annotations

from collections import Counter
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
import threading
import time

from diagnostic_msgs.msg import DiagnosticStatus
from diagnostic_msgs.msg import KeyValue
import numpy as np

RATE_WINDOW_S = 5.0
LATENCY_SAMPLES = 500
# A frame's way through the node, in order (milliseconds each, on /diagnostics):
# receive: image stamp -> subscription callback (the transport, if the stamp is the sender's
# clock); wait: callback -> the worker took it; convert: message -> image array; preprocess:
# resize/crop/normalise; infer: the model on the frame's batch; postprocess: ranking, messages
# (and overlays) for the batch; publish: the batch's messages sent.
STAGES = ('receive', 'wait', 'convert', 'preprocess', 'infer', 'postprocess', 'publish')


class _Rate:
    """Events per second over (at most) the last RATE_WINDOW_S seconds."""

    def __init__(self) -> None:
        self._times: deque[float] = deque()
        self._counts: deque[int] = deque()

    def add(self, now: float, count: int = 1) -> None:
        self._times.append(now)
        self._counts.append(count)

    def per_second(self, now: float) -> float:
        """
        Return the intervals between the window's events per second of the window.

        Counting the events of the window, (n - 1) intervals over the time since the first
        one, is right from the second event on: dividing n by the whole window would read
        half the rate for a stream that started half a window ago.
        """
        while self._times and self._times[0] < now - RATE_WINDOW_S:
            self._times.popleft()
            self._counts.popleft()
        if len(self._times) < 2:
            return 0.0
        return (sum(self._counts) - self._counts[0]) / max(now - self._times[0], 1e-9)


class SequenceGaps:
    """
    Messages a publisher sent that never reached the callbacks, from its sequence numbers.

    The middleware keeps only the newest ``queue_depth`` frames while the node is busy, and a
    best-effort transport may lose some: either way the publisher's sequence number jumps.
    A number that goes back means the publisher restarted: counting starts again.
    """

    def __init__(self) -> None:
        self._last: dict[Hashable, int] = {}

    def missed(self, publisher: Hashable, sequence: int | None) -> int:
        """Return how many messages of ``publisher`` were skipped before ``sequence``."""
        if sequence is None:  # the middleware does not number messages
            return 0
        last = self._last.get(publisher)
        self._last[publisher] = sequence
        return sequence - last - 1 if last is not None and sequence > last else 0


@dataclass
class _Event:
    """How often something happened, when last, and what it said."""

    count: int = 0
    last_time: float = 0.0
    last_text: str = ''
    reported: int = 0

    def add(self, now: float, text: str = '') -> None:
        self.count += 1
        self.last_time = now
        self.last_text = text or self.last_text

    def age(self, now: float) -> float:
        """Seconds since the last occurrence; inf if it never happened."""
        return now - self.last_time if self.count else float('inf')

    def fresh(self) -> int:
        """Occurrences since the previous call."""
        fresh, self.reported = self.count - self.reported, self.count
        return fresh


class NodeStatistics:
    """Counts, rates and latencies of one node, safe to update from several threads."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.received: dict[Hashable, int] = {}
        self.missed: dict[Hashable, int] = {}
        self.rejected: dict[Hashable, int] = {}
        self._input_rates: dict[Hashable, _Rate] = {}
        self._output_rate = _Rate()
        self._latency_ms: deque[float] = deque(maxlen=LATENCY_SAMPLES)
        self._stage_ms = {stage: deque(maxlen=LATENCY_SAMPLES) for stage in STAGES}
        self._batch_sizes: Counter[int] = Counter()
        self._input = _Event()
        self._accepted = _Event()
        self._published = _Event()
        self._rejections = _Event()
        self._inference_errors = _Event()
        self._worker_failures = _Event()
        self._started = clock()

    @property
    def published(self) -> int:
        """Results published so far."""
        return self._published.count

    def restart(self) -> None:
        """Start the 'nothing published since' clock afresh (the worker (re)started)."""
        with self._lock:
            self._started = self._clock()

    def on_received(self, topic: Hashable, missed: int = 0,
                    receive_ms: float | None = None) -> None:
        """
        Count an incoming message, and ``missed`` ones its publisher sent before it.

        ``receive_ms``: publisher to callback, the message's receive stage (if known).
        """
        now = self._clock()
        with self._lock:
            if receive_ms is not None:
                self._stage_ms['receive'].append(receive_ms)
            self.received[topic] = self.received.get(topic, 0) + 1
            if missed:
                self.missed[topic] = self.missed.get(topic, 0) + missed
            self._input_rates.setdefault(topic, _Rate()).add(now, 1 + missed)
            self._input.add(now)

    def on_accepted(self) -> None:
        """Count a message that passed the structural checks and waits for the worker."""
        with self._lock:
            self._accepted.add(self._clock())

    def on_rejected(self, topic: Hashable, reason: str) -> None:
        """Count a message that could not be used, and remember why."""
        with self._lock:
            self.rejected[topic] = self.rejected.get(topic, 0) + 1
            self._rejections.add(self._clock(), f'{topic}: {reason}')

    def on_published(self, latency_ms: float) -> None:
        """Count a result; ``latency_ms`` runs from the image stamp to publication."""
        now = self._clock()
        with self._lock:
            self._published.add(now)
            self._output_rate.add(now)
            self._latency_ms.append(latency_ms)

    def on_stage(self, stage: str, milliseconds: float) -> None:
        """Record the time a frame (or its batch) spent in one of STAGES."""
        with self._lock:
            self._stage_ms[stage].append(milliseconds)

    def on_batch(self, size: int, stages: Mapping[str, Iterable[float]]) -> None:
        """
        Count a batch of ``size`` frames that went through the model, and its stage times.

        One call (one lock) per batch: this runs on the worker's path for every frame. A
        batch of 0 (every frame rejected) records the times without counting a batch.
        """
        with self._lock:
            if size:
                self._batch_sizes[size] += 1
            for stage, milliseconds in stages.items():
                self._stage_ms[stage].extend(milliseconds)

    def on_inference_error(self, reason: str) -> None:
        """Count a batch the model failed on."""
        with self._lock:
            self._inference_errors.add(self._clock(), reason)

    def on_worker_failure(self, reason: str) -> None:
        """Count an unexpected error that interrupted the worker (which then went on)."""
        with self._lock:
            self._worker_failures.add(self._clock(), reason)

    def report(self, dropped: dict[Hashable, int]) -> dict[str, str]:
        """Return the current figures as diagnostic key/value strings."""
        now = self._clock()

        def percentiles(samples: deque) -> str:
            if not samples:
                return 'n/a'
            p50, p95 = np.percentile(np.asarray(samples), [50, 95])
            return f'{p50:.1f} / {p95:.1f}'

        def median(samples: deque) -> str:
            return f'{np.median(np.asarray(samples)):.2f}' if samples else 'n/a'

        with self._lock:
            values = {
                f'input rate {topic} (Hz)': f'{rate.per_second(now):.1f}'
                for topic, rate in sorted(self._input_rates.items(), key=lambda i: str(i[0]))}
            values.update({
                'output rate (Hz)': f'{self._output_rate.per_second(now):.1f}',
                'latency stamp->publish p50 / p95 (ms)': percentiles(self._latency_ms),
                'stages p50 (ms)': ', '.join(f'{stage} {median(samples)}'
                                             for stage, samples in self._stage_ms.items()),
                **{f'{stage} p50 / p95 (ms)': percentiles(samples)
                   for stage, samples in self._stage_ms.items()},
                'batch sizes (size: batches)': ', '.join(
                    f'{size}: {count}' for size, count in sorted(self._batch_sizes.items()))
                or 'none yet',
                'received': str(sum(self.received.values())),
                'missed (newer frame kept by the middleware, or lost)':
                    str(sum(self.missed.values())),
                'published': str(self._published.count),
                'dropped (newer frame arrived)': str(sum(dropped.values())),
                'rejected (malformed)': str(sum(self.rejected.values())),
                'last rejection': self._rejections.last_text or 'none',
                'inference errors': str(self._inference_errors.count),
                'last inference error': self._inference_errors.last_text or 'none',
                'worker restarts': str(self._worker_failures.count),
                'last worker error': self._worker_failures.last_text or 'none',
            })
        return values

    def problems(self, window_s: float) -> tuple[list[str], list[str]]:
        """
        Return (errors, warnings) about the node's work, for its diagnostic level.

        Errors: the worker failed within ``window_s``; messages arrive (within ``window_s``)
        but none was usable, or frames were accepted but nothing was published for longer
        than ``window_s``. Warnings: rejections and inference errors since the last call.
        """
        now = self._clock()
        errors, warnings = [], []
        with self._lock:
            if self._worker_failures.age(now) < window_s:
                errors.append(f'the worker failed and was restarted '
                              f'({self._worker_failures.count} so far): '
                              f'{self._worker_failures.last_text}')
            silent = now - max(self._published.last_time, self._started)
            if self._accepted.age(now) < window_s and silent > window_s:
                cause = (f'; last inference error: {self._inference_errors.last_text}'
                         if self._inference_errors.count else '')
                errors.append(f'frames arrive but nothing was published for {silent:.0f} s'
                              f'{cause}')
            elif (self._input.age(now) < window_s
                  and now - max(self._accepted.last_time, self._started) > window_s):
                errors.append(f'messages arrive but none was usable for more than '
                              f'{window_s:.0f} s; last rejection: {self._rejections.last_text}')
            fresh = self._rejections.fresh()
            if fresh:
                warnings.append(f'{fresh} malformed messages rejected since the last report')
            fresh = self._inference_errors.fresh()
            if fresh:
                warnings.append(f'{fresh} batches failed in the model since the last report: '
                                f'{self._inference_errors.last_text}')
        return errors, warnings

    def seconds_since_input(self) -> float:
        """Return the seconds since the last message arrived (inf if none ever did)."""
        with self._lock:
            return self._input.age(self._clock())


def diagnostic_status(name: str, hardware_id: str, level: bytes, message: str,
                      values: dict[str, str]) -> DiagnosticStatus:
    """Build one DiagnosticStatus from plain values."""
    return DiagnosticStatus(level=level, name=name, message=message, hardware_id=hardware_id,
                            values=[KeyValue(key=k, value=v) for k, v in values.items()])
