"""The monitor: Scoreboard pairing and statistics, and a live run against a perfect classifier."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from dl_perception.inference.scoreboard import format_summary
from dl_perception.inference.scoreboard import Scoreboard
from dl_perception.ros.monitor import label_names
from dl_perception.ros.monitor import MonitorOptions
from dl_perception.ros.monitor import top1
import numpy as np
import pytest
from ros_testing import RunningNode
from ros_testing import start_helper
from vision_msgs.msg import Classification
from vision_msgs.msg import LabelInfo
from vision_msgs.msg import ObjectHypothesis
from vision_msgs.msg import VisionClass

MS = 1_000_000


def key(i: int) -> tuple[int, str]:
    return (1_000 * MS * (i + 1), 'camera')


def test_pairs_out_of_order_and_scores():
    board = Scoreboard()
    board.add_truth(key(1), 'bag')
    board.add_classification(key(0), 'coat', key(0)[0] + 5 * MS)
    assert board.frames == 0
    assert (board.unmatched_classifications, board.unmatched_truths) == (1, 1)
    board.add_truth(key(0), 'shirt')
    board.add_classification(key(1), 'bag', key(1)[0] + 7 * MS)
    assert (board.frames, board.correct, board.accuracy) == (2, 1, 0.5)
    assert (board.unmatched_classifications, board.unmatched_truths) == (0, 0)
    summary = board.summary()
    assert summary['per_class'] == {'bag': {'frames': 1, 'correct': 1},
                                    'shirt': {'frames': 1, 'correct': 0}}
    assert summary['latency_ms_max'] == 7.0


def test_frame_id_is_part_of_the_key_and_unmatched_counts():
    board = Scoreboard()
    board.add_truth((5, 'left'), 'bag')
    board.add_classification((5, 'right'), 'bag', 10)
    board.add_classification((6, 'left'), 'bag', 11)
    assert board.frames == 0
    assert (board.unmatched_classifications, board.unmatched_truths) == (2, 1)
    summary = board.summary()
    assert summary['accuracy'] is None and summary['frames'] == 0


def test_oldest_pending_are_dropped_but_still_counted():
    board = Scoreboard(max_pending=2)
    for i in range(5):
        board.add_truth(key(i), 'bag')
    assert board.unmatched_truths == 5
    board.add_classification(key(0), 'bag', key(0)[0])
    assert board.frames == 0
    board.add_classification(key(4), 'bag', key(4)[0])
    assert board.frames == 1


def test_latency_percentiles_and_rate():
    board = Scoreboard()
    latencies = np.arange(1, 101)
    for i, latency in enumerate(latencies):
        stamp = 10 * MS * i
        board.add_truth((stamp, 'camera'), 'bag')
        # Received every 10 ms: 100 classifications over 0.99 s.
        board.add_classification((stamp, 'camera'), 'bag', stamp + int(latency) * MS)
    summary = board.summary()
    assert summary['latency_ms_p50'] == pytest.approx(np.percentile(latencies, 50))
    assert summary['latency_ms_p95'] == pytest.approx(np.percentile(latencies, 95))
    assert summary['latency_ms_max'] == pytest.approx(100.0)
    assert summary['rate_hz'] == pytest.approx(99 / (0.99 + 0.099))
    assert summary['accuracy'] == 1.0
    line = board.status_line()
    assert 'frames 100' in line and 'accuracy 1.0000' in line and 'p95 95.0 ms' in line
    assert 'latency p50/p95/max: 50.5 / 95.0 / 100.0 ms' in format_summary(summary, 'test')


def test_top1_takes_the_highest_score():
    results = [ObjectHypothesis(class_id='coat', score=0.2),
               ObjectHypothesis(class_id='bag', score=0.7),
               ObjectHypothesis(class_id='shirt', score=0.7)]
    assert top1(Classification(results=results)) == 'bag'


def test_numeric_class_ids_are_named_through_label_info():
    label_info = LabelInfo(class_map=[VisionClass(class_id=0, class_name='coat'),
                                      VisionClass(class_id=1, class_name='bag')])
    results = [ObjectHypothesis(class_id='0', score=0.2),
               ObjectHypothesis(class_id='1', score=0.8)]
    assert top1(Classification(results=results), label_names(label_info)) == 'bag'
    assert top1(Classification(results=results)) == '1'  # no LabelInfo yet: the id as it is
    assert top1(Classification()) is None


@pytest.mark.parametrize('options', [{'frames': -1}, {'print_every': 0.0},
                                     {'truth_topic': ''}])
def test_options_are_validated(options):
    with pytest.raises(ValueError):
        MonitorOptions(**options)


@pytest.mark.ros
def test_monitor_scores_a_perfect_classifier(ros_env, tmp_path):
    out = tmp_path / 'summary.json'
    monitor = subprocess.Popen(
        [sys.executable, '-m', 'dl_perception.ros.monitor', '--frames', '30', '--json', str(out),
         '--idle-timeout', '5', '--print-every', '0.5'],
        env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    classifier = start_helper('perfect_classifier.py', env=ros_env)
    try:
        source = subprocess.run(
            [sys.executable, '-m', 'dl_perception.ros.image_source_node', '--ros-args',
             '-p', 'max_frames:=30', '-p', 'rate_hz:=100.0', '-p', 'width:=64',
             '-p', 'height:=48', '-p', 'startup_delay:=0.0', '-p', 'wait_for_subscribers:=2'],
            env=ros_env, capture_output=True, text=True, timeout=60)
        printed, err = monitor.communicate(timeout=60)
    finally:
        monitor.kill()
        classifier.send_signal(signal.SIGINT)
        classifier.communicate(timeout=30)
    assert source.returncode == 0, source.stderr
    assert monitor.returncode == 0, err
    assert 'monitor summary (30 frames paired)' in printed
    summary = json.loads(out.read_text())
    assert (summary['frames'], summary['correct'], summary['accuracy']) == (30, 30, 1.0)
    assert sum(c['frames'] for c in summary['per_class'].values()) == 30
    assert summary['unmatched_truths'] == 0 and summary['unmatched_classifications'] == 0
    assert summary['rate_hz'] > 0
    assert 0 <= summary['latency_ms_p50'] <= summary['latency_ms_p95'] <= (
        summary['latency_ms_max'])


@pytest.mark.ros
@pytest.mark.slow  # 9 s here
# About one run in five (2 of 8 on df4284e, before this stop's changes) the monitor gets all
# 20 truths and no classification, and times out: the source starts before the classifier's
# image subscription, or its result writer, is matched. Not fixed yet: see the stop 23 note.
@pytest.mark.flaky(reruns=2)
def test_a_source_waiting_for_the_monitor_streams_only_once_a_classifier_is_heard(ros_env):
    # The monitor used to take ground truth at once, so a source could start before the
    # monitor heard the classifier: the demo lost its first result so (299 of 300 paired).
    monitor = subprocess.Popen(
        [sys.executable, '-m', 'dl_perception.ros.monitor', '--frames', '20',
         '--idle-timeout', '5'],
        env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    source = RunningNode(
        [sys.executable, '-m', 'dl_perception.ros.image_source_node', '--ros-args',
         '-p', 'max_frames:=20', '-p', 'rate_hz:=50.0', '-p', 'width:=64', '-p', 'height:=48',
         '-p', 'startup_delay:=0.0', '-p', 'wait_for_subscribers:=1',
         '-p', 'wait_timeout:=60.0'], ros_env)
    classifier = None
    try:
        source.wait_for('publishing ')
        time.sleep(4.0)  # the monitor alone: nothing can be scored, so nothing is sent
        assert source.process.poll() is None and 'done' not in source.output, source.output
        classifier = start_helper('perfect_classifier.py', env=ros_env)
        printed, err = monitor.communicate(timeout=60)
    finally:
        monitor.kill()
        source.stop(timeout=30)
        if classifier is not None:
            classifier.send_signal(signal.SIGINT)
            classifier.communicate(timeout=30)
    assert monitor.returncode == 0, err
    assert 'monitor summary (20 frames paired)' in printed, printed
    assert 'done: sent 20 frames' in source.output, source.output
    assert 'has a publisher; listening to /ground_truth' in printed, printed
