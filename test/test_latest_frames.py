"""LatestFrames in-process: one newest frame per camera, replaced ones counted as dropped."""

from __future__ import annotations

import threading
import time

from dl_perception.ros.latest_frames import LatestFrames
from dl_perception.ros.latest_frames import ReceivedFrame


def frame(name: str) -> ReceivedFrame:
    return ReceivedFrame(name, 0.0)


def test_take_returns_the_newest_of_each_camera_and_counts_the_replaced():
    frames = LatestFrames()
    frames.put('left', frame('l1'))
    frames.put('left', frame('l2'))
    frames.put('right', frame('r1'))
    assert frames.take(timeout=0.0) == {'left': frame('l2'), 'right': frame('r1')}
    assert frames.dropped == {'left': 1}
    assert frames.take(timeout=0.0) == {}


def test_a_frame_taken_in_time_is_not_dropped():
    frames = LatestFrames()
    frames.put('left', frame('l1'))
    frames.take(timeout=0.0)
    frames.put('left', frame('l2'))
    assert frames.take(timeout=0.0) == {'left': frame('l2')} and frames.dropped == {}


def test_clear_forgets_without_counting():
    frames = LatestFrames()
    frames.put('left', frame('l1'))
    frames.clear()
    frames.put('left', frame('l2'))
    assert frames.take(timeout=0.0) == {'left': frame('l2')} and frames.dropped == {}


def test_take_wakes_when_a_frame_arrives():
    frames = LatestFrames()
    taken = {}
    worker = threading.Thread(target=lambda: taken.update(frames.take(timeout=30.0)))
    worker.start()
    frames.put('left', frame('l1'))
    worker.join(timeout=10.0)
    assert not worker.is_alive() and taken == {'left': frame('l1')}


def test_the_spinning_thread_waits_while_every_camera_has_a_frame_waiting():
    frames = LatestFrames()
    frames.put('left', frame('l1'))
    started = time.monotonic()
    frames.wait_while_full(2, timeout=0.0)  # one of two cameras waiting: no wait at all
    frames.wait_while_full(1, timeout=0.2)  # every camera waiting: waits out the timeout
    assert time.monotonic() - started >= 0.2
    spinner = threading.Thread(target=frames.wait_while_full, args=(1, 30.0))
    spinner.start()
    time.sleep(0.05)
    assert spinner.is_alive()
    frames.take(timeout=0.0)  # the worker took them: the spinner goes on at once
    spinner.join(timeout=10.0)
    assert not spinner.is_alive()
