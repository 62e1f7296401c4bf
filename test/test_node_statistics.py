"""NodeStatistics in-process, on a clock the test moves: rates and the blind-node checks."""

from __future__ import annotations

from dl_perception.ros.node_statistics import NodeStatistics
from dl_perception.ros.node_statistics import SequenceGaps
import pytest


class Clock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def stream(statistics: NodeStatistics, clock: Clock, rate_hz: float, seconds: float,
           publish: bool = True) -> None:
    """Frames arriving (and, if ``publish``, classified) at ``rate_hz`` for ``seconds``."""
    for _ in range(round(rate_hz * seconds)):
        clock.now += 1.0 / rate_hz
        statistics.on_received('/image')
        statistics.on_accepted()
        if publish:
            statistics.on_published(5.0)


@pytest.mark.parametrize('seconds', [1.0, 2.5, 4.0, 30.0])
def test_input_and_output_rates_are_right_from_the_start(seconds):
    clock = Clock()
    statistics = NodeStatistics(clock)
    stream(statistics, clock, 27.5, seconds)
    values = statistics.report({})
    assert float(values['input rate /image (Hz)']) == pytest.approx(27.5, rel=0.05)
    assert float(values['output rate (Hz)']) == pytest.approx(27.5, rel=0.05)


def test_rate_falls_to_zero_when_the_stream_stops():
    clock = Clock()
    statistics = NodeStatistics(clock)
    stream(statistics, clock, 30.0, 10.0)
    clock.now += 2.5
    assert 10 < float(statistics.report({})['input rate /image (Hz)']) < 30
    clock.now += 10.0
    assert float(statistics.report({})['input rate /image (Hz)']) == 0.0


def test_frames_without_results_are_an_error_after_the_window():
    clock = Clock()
    statistics = NodeStatistics(clock)
    statistics.restart()
    stream(statistics, clock, 10.0, 2.0, publish=False)
    assert statistics.problems(window_s=3.0) == ([], [])
    stream(statistics, clock, 10.0, 2.0, publish=False)
    errors, _ = statistics.problems(window_s=3.0)
    assert errors == ['frames arrive but nothing was published for 4 s']
    stream(statistics, clock, 10.0, 1.0)
    assert statistics.problems(window_s=3.0) == ([], [])


def test_worker_failures_and_inference_errors_are_reported():
    clock = Clock()
    statistics = NodeStatistics(clock)
    statistics.on_worker_failure('KeyError: boom')
    statistics.on_inference_error('model.onnx failed on a batch')
    statistics.on_inference_error('model.onnx failed on a batch')
    errors, warnings = statistics.problems(window_s=3.0)
    assert errors == ['the worker failed and was restarted (1 so far): KeyError: boom']
    assert warnings == ['2 batches failed in the model since the last report: '
                        'model.onnx failed on a batch']
    values = statistics.report({})
    assert values['worker restarts'] == '1' and values['inference errors'] == '2'
    clock.now += 3.5
    assert statistics.problems(window_s=3.0) == ([], [])


def test_messages_that_are_all_rejected_are_an_error():
    clock = Clock()
    statistics = NodeStatistics(clock)
    statistics.restart()
    for _ in range(40):
        clock.now += 0.1
        statistics.on_received('/image')
        statistics.on_rejected('/image', 'unsupported encoding')
    errors, warnings = statistics.problems(window_s=3.0)
    assert errors == ['messages arrive but none was usable for more than 3 s; last '
                      'rejection: /image: unsupported encoding']
    assert warnings == ['40 malformed messages rejected since the last report']


def test_stage_times_and_batch_sizes_are_reported():
    statistics = NodeStatistics(Clock())
    values = statistics.report({})
    assert values['infer p50 / p95 (ms)'] == 'n/a'
    assert values['batch sizes (size: batches)'] == 'none yet'
    statistics.on_batch(1, {'infer': [1.0, 2.0], 'wait': [0.25]})
    statistics.on_batch(0, {'infer': [3.0]})  # every frame rejected: times, no batch
    for size in (2, 2, 1, 2):
        statistics.on_batch(size, {})
    statistics.on_stage('infer', 4.0)
    statistics.on_stage('infer', 100.0)
    values = statistics.report({})
    assert values['infer p50 / p95 (ms)'] == '3.0 / 80.8'
    assert values['wait p50 / p95 (ms)'] == '0.2 / 0.2'
    assert values['stages p50 (ms)'].startswith('receive n/a, wait 0.25, convert n/a')
    assert 'infer 3.00' in values['stages p50 (ms)']
    assert values['batch sizes (size: batches)'] == '1: 2, 2: 3'


def test_sequence_gaps_count_what_a_publisher_sent_that_never_arrived():
    gaps = SequenceGaps()
    assert [gaps.missed('a', n) for n in (1, 2, 5, 6)] == [0, 0, 2, 0]
    assert gaps.missed('b', 10) == 0  # a publisher of its own
    assert gaps.missed('a', 1) == 0  # a restarted publisher counts afresh
    assert gaps.missed('a', 4) == 2
    assert gaps.missed('c', None) == 0  # a middleware without sequence numbers


def test_missed_frames_count_in_the_input_rate_and_on_their_own():
    clock = Clock()
    statistics = NodeStatistics(clock)
    for _ in range(100):  # 1,000 frames/s sent, one in ten reaches the callback
        clock.now += 0.01
        statistics.on_received('/image', missed=9)
    values = statistics.report({})
    assert float(values['input rate /image (Hz)']) == pytest.approx(1000, rel=0.02)
    assert values['received'] == '100'
    assert values['missed (newer frame kept by the middleware, or lost)'] == '900'
