"""classifier_node as a real process, fed and read by other real processes over ROS 2."""

from __future__ import annotations

import json
from pathlib import Path
import signal

import cv2
from dl_perception.datasets import FASHION_MNIST_ROOT
from dl_perception.datasets import load_fashion_mnist
from dl_perception.inference.classifier import Classifier
import numpy as np
import pytest
from ros_testing import probe
from ros_testing import publish
from ros_testing import recorded
from ros_testing import start_recorder
from training_runs import train_folder_lenet

NODE = 'dl_perception.ros.classifier_node'
pytestmark = pytest.mark.ros


def parameters(model: Path, **extra) -> dict:
    return {'model_path': str(model), 'providers': ['cpu'], **extra}


@pytest.fixture(scope='module')
def test_images():
    return load_fashion_mnist(FASHION_MNIST_ROOT, 'test')


def expected_labels(model: Path, images, indices) -> list[str]:
    classifier = Classifier(model)
    return [classifier.classify(np.dstack([images.read(i)[:, :, 0]] * 3), 'bgr').ranked[0][0]
            for i in indices]


@pytest.mark.slow
@pytest.mark.parametrize('precision', ['float32', 'int8'])
def test_classifies_known_images_and_copies_headers(start_node, ros_env, tiny_onnx, int8,
                                                    test_images, precision):
    model = tiny_onnx if precision == 'float32' else int8.path
    node = start_node(NODE, parameters(model, top_k=3))
    node.wait_for('active:')
    # 20 s is ample for 20 frames at 20 Hz; a frame dropped under load must not cost 60 s
    recorder = start_recorder(ros_env, {'classification': {'type': 'Classification',
                                                           'count': 20}}, timeout=20)
    indices = list(range(20))
    publish(ros_env, indices=indices, topics=['image'], rate=20)
    results = recorded(recorder)['classification']
    expected = dict(zip(indices, expected_labels(model, test_images, indices)))
    names = Classifier(model).labels  # class_id is the class index (the vision_msgs way)
    assert len(results) >= 15  # only the newest frame is kept: a drop under load is allowed
    for message in results:
        index = message['header']['stamp']['nanosec']
        assert message['header'] == {'stamp': {'sec': 1000 + index, 'nanosec': index},
                                     'frame_id': f'image#{index}'}
        labels = [names[int(r['class_id'])] for r in message['results']]
        scores = [r['score'] for r in message['results']]
        assert len(labels) == 3 and labels[0] == expected[index]
        assert scores == sorted(scores, reverse=True) and sum(scores) <= 1.0 + 1e-6


@pytest.mark.slow
def test_lifecycle_transitions_stop_and_restart_the_work(start_node, ros_env, tiny_onnx):
    start_node(NODE, parameters(tiny_onnx, autostart=False))

    def change(name: str) -> dict:
        return json.loads(probe(ros_env, 'transition', '/classifier', name).stdout)

    assert change('activate') == {'success': False, 'state': 'unconfigured'}
    assert change('configure') == {'success': True, 'state': 'inactive'}
    assert change('activate') == {'success': True, 'state': 'active'}
    recorder = start_recorder(ros_env, {'classification': {'type': 'Classification',
                                                           'count': 3}})
    publish(ros_env, indices=list(range(10)), topics=['image'], rate=20)
    assert len(recorded(recorder)['classification']) >= 3
    assert change('deactivate') == {'success': True, 'state': 'inactive'}
    recorder = start_recorder(ros_env, {'classification': {'type': 'Classification'}},
                              timeout=4)
    publish(ros_env, indices=list(range(10)), topics=['image'], rate=20,
            wait_for_subscribers=False)
    assert recorded(recorder) == {}  # inactive: no subscription, nothing published
    assert change('cleanup') == {'success': True, 'state': 'unconfigured'}
    assert change('configure') == {'success': True, 'state': 'inactive'}


def test_late_subscriber_gets_label_info_and_vision_info(start_node, ros_env, tiny_onnx):
    node = start_node(NODE, parameters(tiny_onnx, score_threshold=0.25))
    node.wait_for('active:')
    recorder = start_recorder(ros_env, {
        'label_info': {'type': 'LabelInfo', 'latched': True},
        'vision_info': {'type': 'VisionInfo', 'latched': True}}, timeout=30)
    messages = recorded(recorder)
    label_info = messages['label_info'][0]
    assert [c['class_name'] for c in label_info['class_map']][:2] == ['T-shirt/top', 'Trouser']
    assert [c['class_id'] for c in label_info['class_map']] == list(range(10))
    assert label_info['threshold'] == 0.25
    vision_info = messages['vision_info'][0]
    assert vision_info['database_location'] == str(tiny_onnx)
    assert vision_info['database_version'] == 1 and vision_info['method'] == 'lenet'


@pytest.mark.slow
@pytest.mark.parametrize('reliability', ['reliable', 'best_effort'])
def test_auto_qos_matches_the_publisher(start_node, ros_env, tiny_onnx, reliability):
    node = start_node(NODE, parameters(tiny_onnx))
    node.wait_for('active:')
    recorder = start_recorder(ros_env, {'classification': {'type': 'Classification',
                                                           'count': 5}})
    publish(ros_env, indices=list(range(30)), topics=['image'], rate=20,
            reliability=reliability, settle=1.5)
    received = recorded(recorder).get('classification', [])
    assert len(received) >= 5, node.output
    node.wait_for(f'({reliability})')


@pytest.mark.slow  # 10.4 s on a CI machine
def test_compressed_input_and_two_cameras_share_one_model(start_node, ros_env, tiny_onnx,
                                                          test_images):
    topics = ['left/image', 'right/image/compressed']
    node = start_node(NODE, parameters(tiny_onnx, image_topics=topics, class_id_format='name'))
    node.wait_for('active:')
    recorder = start_recorder(ros_env, {'classification': {'type': 'Classification',
                                                           'count': 12}})
    indices = list(range(20))
    publish(ros_env, indices=indices, topics=topics, rate=20, format='png')
    results = recorded(recorder)['classification']
    expected = dict(zip(indices, expected_labels(tiny_onnx, test_images, indices)))
    cameras = {message['header']['frame_id'].split('#')[0] for message in results}
    assert cameras == set(topics)
    for message in results:
        index = message['header']['stamp']['nanosec']
        assert message['results'][0]['class_id'] == expected[index]


def test_bad_parameters_are_rejected_with_the_reason(start_node, ros_env, tiny_onnx):
    bad = start_node(NODE, parameters(tiny_onnx, top_k=0))
    assert bad.process.wait(timeout=60) == 1
    assert 'top_k' in bad.output
    typo = start_node(NODE, parameters(tiny_onnx, mode='boxes'))
    assert typo.process.wait(timeout=60) == 1
    assert "mode = 'boxes'; allowed: 'classify', 'tiles'" in typo.output

    node = start_node(NODE, parameters(tiny_onnx))
    node.wait_for('active:')
    result = json.loads(probe(ros_env, 'set', '/classifier', 'providers', '[gpu]').stdout)
    assert not result['successful'] and 'tensorrt, cuda, cpu' in result['reason']
    result = json.loads(probe(ros_env, 'set', '/classifier', 'model_path',
                              '/nonexistent/model.onnx').stdout)
    assert not result['successful']
    assert 'previous one keeps serving' in result['reason'] and 'not found' in result['reason']


def test_reload_and_model_change_bump_the_database_version(start_node, ros_env, tiny_onnx,
                                                           tmp_path):
    node = start_node(NODE, parameters(tiny_onnx))
    node.wait_for('active:')
    response = json.loads(probe(ros_env, 'reload', '/classifier').stdout)
    assert response['success'] and 'database version 2' in response['message']
    copy = tmp_path / 'copy.onnx'
    copy.write_bytes(tiny_onnx.read_bytes())
    result = json.loads(probe(ros_env, 'set', '/classifier', 'model_path', str(copy)).stdout)
    assert result['successful'], result
    recorder = start_recorder(ros_env, {'vision_info': {'type': 'VisionInfo', 'latched': True}},
                              timeout=20)
    vision_info = recorded(recorder)['vision_info'][0]
    assert vision_info['database_version'] == 3
    assert vision_info['database_location'] == str(copy)


def test_missing_model_keeps_the_node_up_and_reports_an_error(start_node, ros_env, tmp_path):
    node = start_node(NODE, parameters(tmp_path / 'absent.onnx', diagnostics_period=0.2))
    node.wait_for('cannot load the model')
    recorder = start_recorder(ros_env, {'/diagnostics': {'type': 'DiagnosticArray'}})
    status = recorded(recorder)['/diagnostics'][0]['status'][0]
    assert status['level'] == 2  # ERROR
    assert 'model file not found' in status['message']
    assert node.process.poll() is None


@pytest.mark.slow
def test_fuzzed_messages_are_counted_and_valid_frames_still_classified(start_node, ros_env,
                                                                       tiny_onnx):
    topics = ['image', 'image/compressed']
    # queue_depth 50: every message reaches the callbacks, so the counts can be exact
    node = start_node(NODE, parameters(tiny_onnx, image_topics=topics, reliability='reliable',
                                       queue_depth=50, diagnostics_period=0.5))
    node.wait_for('active:')
    classifications = start_recorder(ros_env, {'classification': {
        'type': 'Classification', 'count': 8}}, timeout=120)
    bad = 1050
    publish(ros_env, indices=list(range(10)), topics=['image'], rate=150,
            malformed={'count': bad, 'seed': 7, 'image_topic': 'image',
                       'compressed_topic': 'image/compressed'})
    assert len(recorded(classifications, timeout=150)['classification']) >= 8
    diagnostics = start_recorder(ros_env, {'/diagnostics': {'type': 'DiagnosticArray'}})
    status = recorded(diagnostics)['/diagnostics'][0]['status'][0]
    values = {pair['key']: pair['value'] for pair in status['values']}
    assert values['received'] == str(bad + 10)
    assert values['rejected (malformed)'] == str(bad)
    batches = dict(pair.split(': ') for pair in values['batch sizes (size: batches)'].split(', '))
    assert sum(int(size) * int(count) for size, count in batches.items()) == \
        int(values['published'])
    for stage in ('receive', 'wait', 'convert', 'preprocess', 'infer', 'postprocess', 'publish'):
        assert float(values[f'{stage} p50 / p95 (ms)'].split(' / ')[0]) >= 0, stage
        assert f'{stage} ' in values['stages p50 (ms)']
    assert node.process.poll() is None
    assert node.stop(signal.SIGINT) == 0


@pytest.mark.parametrize('signal_number', [signal.SIGINT, signal.SIGTERM])
def test_shuts_down_cleanly(start_node, tiny_onnx, signal_number):
    node = start_node(NODE, parameters(tiny_onnx))
    node.wait_for('active:')
    assert node.stop(signal_number) == 0
    assert 'Traceback' not in node.output


@pytest.fixture(scope='module')
def tiles_onnx(tmp_path_factory, test_images) -> Path:
    """Train a LeNet to tell trousers and bags from background (noise, half objects), 32x32."""
    root = tmp_path_factory.mktemp('tiles')
    rng = np.random.default_rng(0)
    train = load_fashion_mnist(FASHION_MNIST_ROOT, 'train')
    for split, start in (('train', 0), ('val', 30_000)):
        for name, label in (('bag', 8), ('trouser', 1), ('background', None)):
            folder = root / 'data' / split / name
            folder.mkdir(parents=True)
            picks = [i for i in range(start, 60_000) if train.labels[i] == label][:200]
            others = [i for i in range(start, 60_000) if train.labels[i] in (1, 8)]
            for number in range(200 if split == 'train' else 40):
                if label is None:  # dark noise, or an object cut in half (a hard negative)
                    image = rng.integers(0, 40, (32, 32), dtype=np.uint8)
                    if number % 2:
                        item = cv2.resize(train.read(others[number])[:, :, 0], (32, 32))
                        shift = (16, -16)[number % 4 // 2]
                        axis = number % 3 % 2
                        half = np.roll(item, shift, axis=axis)
                        cut = slice(0, 16) if shift > 0 else slice(16, 32)
                        if axis == 0:
                            half[cut, :] = 0
                        else:
                            half[:, cut] = 0
                        image = np.maximum(image, half)
                else:
                    image = cv2.resize(train.read(picks[number])[:, :, 0], (32, 32))
                cv2.imwrite(str(folder / f'{number}.png'), image)
    return train_folder_lenet(root, input_size=32, epochs=4)


def test_tiles_mode_finds_a_planted_object(start_node, ros_env, tiles_onnx, test_images,
                                           tmp_path):
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 40, (480, 640), dtype=np.uint8)
    trouser = next(i for i in range(10_000) if test_images.labels[i] == 1)
    frame[192:320, 384:512] = cv2.resize(test_images.read(trouser)[:, :, 0], (128, 128))
    node = start_node(NODE, parameters(tiles_onnx, mode='tiles', tile_size=128,
                                       tile_stride=64, score_threshold=0.8,
                                       ignore_classes=['background']))
    node.wait_for('active:')
    recorder = start_recorder(ros_env, {'detections': {'type': 'Detection2DArray'}})
    np.save(tmp_path / 'frame.npy', frame)
    raw = {'topic': 'image', 'height': 480, 'width': 640, 'encoding': 'mono8', 'step': 640,
           'npy': str(tmp_path / 'frame.npy')}
    publish(ros_env, raw=[raw], rate=5, repeat=3)
    detections = recorded(recorder)['detections'][0]['detections']
    names = Classifier(tiles_onnx).labels
    assert [names[int(d['results'][0]['hypothesis']['class_id'])]
            for d in detections] == ['trouser']
    box = detections[0]['bbox']
    center = box['center']['position']
    assert abs(center['x'] - 448) <= 32 and abs(center['y'] - 256) <= 32
    assert 128 <= box['size_x'] <= 256 and 128 <= box['size_y'] <= 256


@pytest.mark.slow  # 12 s on a CI machine
def test_a_publisher_of_the_wrong_type_and_unknown_overrides_are_reported(
        start_node, ros_env, tiny_onnx, tmp_path):
    node = start_node(NODE, parameters(tiny_onnx, image_topics=['camera/compressed'],
                                       diagnostics_period=0.5, imput_size=224,
                                       crop_fractoin=0.875))
    node.wait_for('active:')
    assert ('ignoring parameters this node does not have: crop_fractoin (did you mean '
            'crop_fraction?), imput_size (did you mean input_size?)') in node.output
    np.save(tmp_path / 'frame.npy', np.zeros((28, 28), np.uint8))
    raw = {'topic': 'camera/compressed', 'as_image': True, 'height': 28, 'width': 28,
           'encoding': 'mono8', 'step': 28, 'npy': str(tmp_path / 'frame.npy')}
    recorder = start_recorder(ros_env, {'/diagnostics': {'type': 'DiagnosticArray',
                                                         'count': 16}})
    publish(ros_env, raw=[raw], rate=5, repeat=20, wait_for_subscribers=False, settle=1.0)
    messages = [r['status'][0]['message'] for r in recorded(recorder)['/diagnostics']]
    assert any('/camera/compressed has publishers of sensor_msgs/msg/Image but is subscribed '
               'as sensor_msgs/msg/CompressedImage' in m for m in messages), messages
    assert all('crop_fractoin' in m for m in messages)
