"""The image_source node: frame rendering, and real runs recorded by a subscriber process."""

from __future__ import annotations

import json
from pathlib import Path
import signal
import subprocess
import sys
import time

import cv2
from dl_perception.datasets import FASHION_MNIST_CLASSES
from dl_perception.datasets import load_fashion_mnist
from dl_perception.datasets.frame_sources import check_source
from dl_perception.datasets.frame_sources import render_frame
import numpy as np
from paths import FASHION_MNIST
import pytest
from ros_testing import start_helper

NODE = [sys.executable, '-m', 'dl_perception.ros.image_source_node']


def node_command(*params: str) -> list[str]:
    """Return the command line starting the node with ``name:=value`` parameters."""
    return [*NODE, '--ros-args', *[arg for param in params for arg in ('-p', param)]]


def run_node(env: dict[str, str], *params: str) -> subprocess.CompletedProcess:
    return subprocess.run(node_command(*params), env=env, capture_output=True, text=True,
                          timeout=60)


def record(env: dict[str, str], out: Path, frames: int, truths: int, *params: str,
           compressed: bool = False) -> tuple[dict, dict[str, np.ndarray]]:
    """Run the node (waiting for the recorder) and return what the recorder saw."""
    recorder = start_helper('frame_recorder.py', str(out), str(frames), str(truths),
                            *(['--compressed'] if compressed else []), env=env)
    try:
        source = run_node(env, 'startup_delay:=0.0', 'wait_for_subscribers:=1', *params)
        seen, err = recorder.communicate(timeout=60)
    finally:
        recorder.kill()
    assert source.returncode == 0, source.stderr
    assert f'sent {frames} frames' in source.stderr
    assert recorder.returncode == 0, err
    with np.load(out) as saved:
        return json.loads(seen), {name: saved[name] for name in saved.files}


@pytest.fixture(scope='module')
def test_split():
    return load_fashion_mnist(FASHION_MNIST, 'test')


def test_render_centres_a_grey_square_on_black(test_split):
    image = test_split.read(0)
    frame = render_frame(image, 'grey', 640, 480)
    assert frame.shape == (480, 640, 3) and frame.dtype == np.uint8
    square = cv2.resize(image[:, :, 0], (480, 480), interpolation=cv2.INTER_LINEAR)
    for channel in range(3):
        assert np.array_equal(frame[:, 80:560, channel], square)
    assert not frame[:, :80].any() and not frame[:, 560:].any()
    assert np.array_equal(render_frame(image, 'grey', 0, 0), np.repeat(image, 3, axis=2))


def test_render_stretches_colour_and_converts_rgb():
    rgb = np.random.default_rng(0).integers(0, 256, (30, 40, 3), np.uint8)
    frame = render_frame(rgb, 'rgb', 64, 48)
    expected = cv2.resize(rgb[:, :, ::-1], (64, 48), interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(frame, expected)
    assert np.array_equal(render_frame(rgb, 'bgr', 40, 30), rgb)
    with pytest.raises(ValueError, match='order'):
        render_frame(rgb, 'yuv', 64, 48)
    with pytest.raises(ValueError, match='uint8 grey'):
        render_frame(rgb, 'grey', 64, 48)


@pytest.mark.parametrize('spec, problem', [
    ('fashion-mnist:test', None), ('folder:/data', None), ('camera:0', None),
    ('fashion-mnist:val', 'split'), ('webcam:0', 'must be'), ('video:', 'must be'),
])
def test_check_source(spec, problem):
    result = check_source(spec)
    assert result is None if problem is None else problem in result


@pytest.mark.ros
def test_publishes_dataset_frames_and_ground_truth(ros_env, tmp_path, test_split):
    seen, pixels = record(ros_env, tmp_path / 'frames.npz', 20, 20,
                          'max_frames:=20', 'rate_hz:=50.0', 'width:=640', 'height:=480',
                          'encoding:=bgr8')
    frames, truths = seen['frames'], seen['truths']
    assert len(frames) == 20 and len(truths) == 20
    assert {(f['width'], f['height'], f['encoding'], f['step'], f['frame_id'])
            for f in frames} == {(640, 480, 'bgr8', 1920, 'camera')}
    stamps = [f['stamp'] for f in frames]
    assert all(a < b for a, b in zip(stamps, stamps[1:]))
    assert [(t['stamp'], t['frame_id']) for t in truths] == [
        (f['stamp'], f['frame_id']) for f in frames]
    assert [t['results'] for t in truths] == [
        [[FASHION_MNIST_CLASSES[test_split.labels[i]], 1.0]] for i in range(20)]
    for i in range(20):
        assert np.array_equal(pixels[f'frame_{i}'],
                              render_frame(test_split.read(i), 'grey', 640, 480)), i


@pytest.mark.ros
def test_compressed_jpeg_frames_decode_to_the_rendered_frame(ros_env, tmp_path, test_split):
    seen, pixels = record(ros_env, tmp_path / 'frames.npz', 5, 5, 'max_frames:=5',
                          'start_index:=7', 'rate_hz:=50.0', 'width:=320', 'height:=240',
                          'compressed:=true', 'compression:=jpeg', compressed=True)
    assert {f['format'] for f in seen['frames']} == {'bgr8; jpeg compressed bgr8'}
    for i in range(5):
        decoded = cv2.imdecode(pixels[f'frame_{i}'], cv2.IMREAD_COLOR)
        expected = render_frame(test_split.read(7 + i), 'grey', 320, 240)
        assert decoded.shape == expected.shape
        assert np.abs(decoded.astype(int) - expected).mean() < 2.0


def write_images(folder: Path, names: list[str]) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(len(names))
    images = {}
    for name in names:
        images[name] = rng.integers(0, 256, (30, 40, 3), np.uint8)
        cv2.imwrite(str(folder / name), images[name])
    return images


@pytest.mark.ros
@pytest.mark.parametrize('labelled', [False, True])
def test_folder_source(ros_env, tmp_path, labelled):
    root = tmp_path / 'images'
    if labelled:
        expected = {**write_images(root / 'bag', ['b1.png', 'a2.png']),
                    **write_images(root / 'shoe', ['s1.png'])}
        order, labels = ['a2.png', 'b1.png', 's1.png'], ['bag', 'bag', 'shoe']
    else:
        expected = write_images(root, ['c.png', 'a.png', 'b.png'])
        order, labels = ['a.png', 'b.png', 'c.png'], []
    seen, pixels = record(ros_env, tmp_path / 'frames.npz', 3, len(labels),
                          f'source:=folder:{root}', 'rate_hz:=50.0', 'width:=64', 'height:=48')
    assert [t['results'] for t in seen['truths']] == [[[label, 1.0]] for label in labels]
    for i, name in enumerate(order):
        assert np.array_equal(pixels[f'frame_{i}'], render_frame(expected[name], 'bgr', 64, 48))


@pytest.mark.ros
def test_video_source_loops(ros_env, tmp_path):
    video = tmp_path / 'clip.avi'
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*'MJPG'), 10, (40, 30))
    for level in range(0, 200, 40):
        writer.write(np.full((30, 40, 3), level, np.uint8))
    writer.release()
    seen, pixels = record(ros_env, tmp_path / 'frames.npz', 7, 0, f'source:=video:{video}',
                          'loop:=true', 'max_frames:=7', 'rate_hz:=50.0', 'width:=64',
                          'height:=48')
    assert seen['truths'] == []
    assert {pixels[f'frame_{i}'].shape for i in range(7)} == {(48, 64, 3)}
    levels = [pixels[f'frame_{i}'].mean() for i in range(7)]
    assert levels == pytest.approx([0, 40, 80, 120, 160, 0, 40], abs=3)


@pytest.mark.ros
def test_missing_dataset_fails_with_how_to_install(ros_env, tmp_path):
    result = run_node(ros_env, f'dataset_root:={tmp_path / "nowhere"}', 'rate_hs:=5.0')
    assert result.returncode == 1
    assert 'rate_hs (did you mean rate_hz?)' in result.stderr  # said before the failure
    assert str(tmp_path / 'nowhere') in result.stderr
    assert 'apt-get install dataset-fashion-mnist' in result.stderr
    assert 'Traceback' not in result.stderr


@pytest.mark.ros
@pytest.mark.parametrize('param, reason', [
    ('rate_hz:=-1.0', 'rate_hz'), ('rate_hz:=0.0', 'rate_hz = 0.0; must be > 0'),
    ('encoding:=yuv', "encoding = 'yuv'; allowed: 'bgr8', 'rgb8', 'mono8'"),
])
def test_invalid_parameter_is_rejected_at_startup(ros_env, param, reason):
    result = run_node(ros_env, param)
    assert result.returncode == 1
    assert 'invalid parameter' in result.stderr and reason in result.stderr
    assert 'Traceback' not in result.stderr


@pytest.mark.ros
@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_cleanly(ros_env, signum):
    node = subprocess.Popen(node_command('loop:=true', 'rate_hz:=50.0', 'startup_delay:=0.0'),
                            env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        line = node.stderr.readline()
        while line and 'publishing' not in line:
            line = node.stderr.readline()
        assert line, 'the node ended before publishing'
        time.sleep(0.5)
        node.send_signal(signum)
        _, err = node.communicate(timeout=30)
    finally:
        node.kill()
    assert node.returncode == 0, err
    assert 'Traceback' not in err
