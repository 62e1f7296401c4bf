"""classifier_node on the OpenVINO backend, as a real process fed and read over ROS 2."""

from __future__ import annotations

from pathlib import Path
import sys

from dl_perception.datasets import FASHION_MNIST_ROOT
from dl_perception.datasets import load_fashion_mnist
from dl_perception.inference.classifier import Classifier
from dl_perception.inference.providers import ProviderSettings
import numpy as np
import pytest
from ros_testing import diagnostics
from ros_testing import publish
from ros_testing import recorded
from ros_testing import ros_arguments
from ros_testing import RunningNode
from ros_testing import set_parameter
from ros_testing import start_recorder
from ros_testing import values_of

NODE = 'dl_perception.ros.classifier_node'
pytestmark = pytest.mark.ros
# The node's module run with the openvino package made unimportable, as on a robot without it.
NODE_WITHOUT_OPENVINO = ("import sys; sys.modules['openvino'] = None\n"
                         'from dl_perception.ros.classifier_node import main\n'
                         'sys.exit(main())\n')


@pytest.fixture(scope='module')
def test_images():
    return load_fashion_mnist(FASHION_MNIST_ROOT, 'test')


def offline_predictions(model: Path, images, indices) -> dict[int, tuple[int, float]]:
    """Top class and its probability per index, from Classifier on OpenVINO in this process."""
    classifier = Classifier(model, providers=ProviderSettings(('openvino',)))
    frames = [np.dstack([images.read(i)[:, :, 0]] * 3) for i in indices]  # as published: bgr8
    return {index: (prediction.class_index, float(prediction.probabilities.max()))
            for index, prediction in zip(indices, classifier.classify_batch(frames, 'bgr'))}


@pytest.mark.slow
@pytest.mark.parametrize('precision', ['float32', 'int8'])
def test_node_on_openvino_classifies_like_openvino_offline(start_node, ros_env, tiny_onnx, int8,
                                                           test_images, precision):
    """The same ONNX file and parameters as on ONNX Runtime; accuracy equals offline's."""
    model = tiny_onnx if precision == 'float32' else int8.path
    node = start_node(NODE, {'model_path': str(model), 'providers': ['openvino'], 'top_k': 3})
    node.wait_for('active:')
    assert f'active: {model.name} on OpenVINO CPU (f32)' in node.output
    # 20 s is ample for 40 frames at 20 Hz; a frame dropped under load must not cost 60 s
    recorder = start_recorder(ros_env, {'classification': {'type': 'Classification',
                                                           'count': 40}}, timeout=20)
    indices = list(range(40))
    publish(ros_env, indices=indices, topics=['image'], rate=20)
    results = recorded(recorder)['classification']
    assert len(results) >= 30  # only the newest frame is kept: a drop under load is allowed
    offline = offline_predictions(model, test_images, indices)
    received = [message['header']['stamp']['nanosec'] for message in results]
    for index, message in zip(received, results):
        best = message['results'][0]
        assert int(best['class_id']) == offline[index][0]
        assert best['score'] == pytest.approx(offline[index][1], abs=1e-5)
    truth = test_images.labels
    node_accuracy = np.mean([int(m['results'][0]['class_id']) == truth[i]
                             for i, m in zip(received, results)])
    offline_accuracy = np.mean([offline[i][0] == truth[i] for i in received])
    assert node_accuracy == offline_accuracy
    values = values_of(diagnostics(ros_env)[0])
    assert values['providers in use'] == 'OpenVINO CPU (f32)'
    assert values['providers asked for'] == 'openvino (f32)'


def test_precision_is_a_parameter_that_reloads_the_model(start_node, ros_env, tiny_onnx):
    node = start_node(NODE, {'model_path': str(tiny_onnx), 'providers': ['openvino']})
    node.wait_for('active:')
    refused = set_parameter(ros_env, '/classifier', 'openvino_precision', 'fp16')
    assert not refused['successful'] and "'f32', 'bf16'" in refused['reason']
    assert set_parameter(ros_env, '/classifier', 'openvino_precision', 'bf16')['successful']
    status = diagnostics(ros_env)[0]
    assert values_of(status)['providers asked for'] == 'openvino (bf16)'
    assert values_of(status)['providers in use'].startswith('OpenVINO CPU (')
    assert values_of(status)['database version'] == '2'


def start_without_openvino(ros_env: dict, parameters: dict) -> RunningNode:
    return RunningNode([sys.executable, '-c', NODE_WITHOUT_OPENVINO,
                        *ros_arguments(parameters)], ros_env)


def test_without_openvino_the_node_refuses_and_says_how_to_install(ros_env, tiny_onnx):
    node = start_without_openvino(ros_env, {'model_path': str(tiny_onnx),
                                            'providers': ['openvino']})
    try:
        node.wait_for('cannot load the model')
        assert 'pip install -r requirements/openvino.txt' in node.output
        status = diagnostics(ros_env)[0]
        assert status['level'] == 2 and 'the OpenVINO runtime is not importable' in \
            status['message']
    finally:
        assert node.stop() == 0


def test_without_openvino_the_allowed_fallback_runs_and_warns(ros_env, tiny_onnx):
    node = start_without_openvino(ros_env, {'model_path': str(tiny_onnx),
                                            'providers': ['openvino'],
                                            'allow_cpu_fallback': True})
    try:
        node.wait_for('active:')
        assert f'active: {tiny_onnx.name} on CPUExecutionProvider' in node.output
        status = diagnostics(ros_env)[0]
        assert status['level'] == 1 and 'openvino did not start' in status['message']
    finally:
        assert node.stop() == 0
