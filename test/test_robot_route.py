"""
The robot route: the package driven by the upstream ``ros2`` tools, as a robot would run it.

``make setup`` builds launch, launch_ros, ros2cli and the upstream vision_msgs 4.1.1 from
../shared/ros2_tooling into the cache; without that folder every test here is skipped with one
reason (``requires_ros2_tooling``). Each test has its own ROS_DOMAIN_ID and ROS_LOG_DIR.
"""

from __future__ import annotations

import json
from pathlib import Path
import re
import subprocess
import sys
import time

from dl_perception.datasets import FASHION_MNIST_ROOT
from dl_perception.datasets import load_fashion_mnist
from dl_perception.inference.classifier import Classifier
import numpy as np
from paths import HELPERS
from paths import REPO_ROOT
import pytest
from ros_testing import diagnostics
from ros_testing import domain_ids
from ros_testing import publish
from ros_testing import read_line
from ros_testing import recorded
from ros_testing import requires_ros2_tooling
from ros_testing import ros2_until
from ros_testing import start_recorder
from ros_testing import values_of
import yaml

pytestmark = [pytest.mark.ros, requires_ros2_tooling]

SHIPPED_CONFIG = REPO_ROOT / 'config' / 'classifier.yaml'
# What ONNX Runtime (and the CUDA / TensorRT libraries it tries) print when a GPU provider
# cannot start: none of it may show on a CPU machine with the shipped configuration.
LIBRARY_ERRORS = ('libcuda', 'libcudnn', 'libnvinfer', 'Failed to load library',
                  '[E:onnxruntime', 'CUDA failure')


def launch_classifier(ros2, model: Path, *arguments: str):
    """``ros2 launch dl_perception classifier.launch.py model:=MODEL ...``, once active."""
    launched = ros2('launch', 'dl_perception', 'classifier.launch.py', f'model:={model}',
                    *arguments)
    launched.wait_for('active: ')
    return launched


# The node keeps only the newest frame, and a loaded machine drops some: five results of ten
# frames show that results flow.
FLOWING = 5


def classify_frames(env: dict, topic: str = 'image') -> list[dict]:
    """Publish Fashion-MNIST test images 0..9 on ``topic``; return the Classifications seen."""
    recorder = start_recorder(env, {'/classification': {'type': 'Classification',
                                                        'count': FLOWING}}, timeout=30)
    publish(env, indices=list(range(10)), topics=[topic], rate=10, settle=1.0)
    return recorded(recorder).get('/classification', [])


def expected_labels(model: Path, count: int) -> dict[int, str]:
    """Return the top label the model gives each of the first ``count`` test images."""
    images = load_fashion_mnist(FASHION_MNIST_ROOT, 'test')
    classifier = Classifier(model)
    return {index: classifier.classify(np.dstack([images.read(index)[:, :, 0]] * 3),
                                       'bgr').ranked[0][0]
            for index in range(count)}


def dump_parameters(env: dict, node: str = '/classifier', timeout: float = 30.0) -> dict:
    """``ros2 param dump NODE`` (retried until the node is discovered); the values, parsed."""
    deadline = time.monotonic() + timeout
    while True:
        done = subprocess.run(['ros2', 'param', 'dump', node, '--no-daemon'], env=env,
                              capture_output=True, text=True, timeout=timeout)
        if done.returncode == 0 and 'ros__parameters' in done.stdout:
            return yaml.safe_load(done.stdout)[node]['ros__parameters']
        if time.monotonic() > deadline:
            raise AssertionError(f'ros2 param dump {node} failed: {done.stdout}{done.stderr}')


@pytest.mark.slow
def test_demo_launch_ends_by_itself_with_the_monitor_summary(ros2, tiny_onnx):
    demo = ros2('launch', 'dl_perception', 'demo.launch.py', f'model:={tiny_onnx}',
                'frames:=300')
    code = demo.wait(timeout=120)
    output = demo.output
    assert code == 0, output
    assert 'monitor summary (300 frames paired)' in output, output
    assert re.search(r'accuracy: +[01]\.\d{4}', output), output
    # The camera ends by itself after its last frame; nothing may die of the shutdown.
    assert 'process has died' not in output, output
    assert output.count('process has finished cleanly') == 3, output


@pytest.mark.slow  # 11.8 s on a CI machine
def test_classifier_node_by_ros2_run_is_active_and_answers_ros2_param(ros2, ros2_cli, tiny_onnx):
    node = ros2('run', 'dl_perception', 'classifier_node', '--ros-args', '-p',
                f'model_path:={tiny_onnx}', '-p', 'providers:=[cpu]')
    node.wait_for('active: ')
    assert 'active [3]' in ros2_until(ros2_cli, 'lifecycle', 'get', '/classifier',
                                      expect='active')
    assert 'Integer value is: 5' in ros2_until(ros2_cli, 'param', 'get', '/classifier', 'top_k',
                                               expect='value is')
    assert node.stop() == 0, node.output


def test_upstream_vision_msgs_consumer_sees_the_same_types(ros2, upstream_vision_msgs_env,
                                                           tiny_onnx):
    node = ros2('run', 'dl_perception', 'classifier_node', '--ros-args', '-p',
                f'model_path:={tiny_onnx}', '-p', 'providers:=[cpu]')
    node.wait_for('active: ')
    consumer = subprocess.run([sys.executable, str(HELPERS / 'upstream_consumer.py'), '30'],
                              env=upstream_vision_msgs_env, capture_output=True, text=True,
                              timeout=90)
    assert consumer.returncode == 0, consumer.stderr
    report = json.loads(consumer.stdout.splitlines()[-1])
    print(json.dumps(report, indent=1))
    upstream = Path(upstream_vision_msgs_env['DLP_UPSTREAM_VISION_MSGS'])
    assert Path(report['vision_msgs']).is_relative_to(upstream), report
    for topic, hashes in report['topics'].items():
        assert hashes['publishers'] == [hashes['subscriber']], (topic, report)
    assert report['labels'] and len(report['labels']) == 10, report


@pytest.mark.slow  # 12.1 s on a CI machine
@pytest.mark.parametrize('image_topic', ['/camera/image_raw', '/camera/image_raw/compressed'])
def test_launch_file_classifies_the_camera_topic_and_copies_its_headers(ros2, ros2_cli,
                                                                        tiny_onnx,
                                                                        image_topic):
    launched = launch_classifier(ros2, tiny_onnx, f'image_topic:={image_topic}')
    kind = 'CompressedImage' if image_topic.endswith('/compressed') else 'Image'
    launched.wait_for(f'subscribed to {image_topic} as sensor_msgs/msg/{kind}')
    results = classify_frames(ros2_cli, image_topic)
    assert len(results) >= FLOWING, launched.output
    for message in results:
        index = message['header']['stamp']['nanosec']
        assert message['header'] == {'stamp': {'sec': 1000 + index, 'nanosec': index},
                                     'frame_id': f'{image_topic}#{index}'}
        assert message['results'], message


@pytest.mark.slow
def test_launched_node_obeys_ros2_param_service_and_lifecycle(ros2, ros2_cli, tiny_onnx):
    launched = launch_classifier(ros2, tiny_onnx)
    refused = ros2_until(ros2_cli, 'param', 'set', '/classifier', 'model_path',
                         '/nonexistent.onnx', expect='Setting parameter failed')
    assert re.search(r'Setting parameter failed: .*nonexistent\.onnx', refused), refused
    assert len(classify_frames(ros2_cli)) >= FLOWING, launched.output  # the old model serves

    ros2_until(ros2_cli, 'param', 'set', '/classifier', 'score_threshold', '0.5',
               expect='Set parameter successful')
    late = start_recorder(ros2_cli, {'/label_info': {'type': 'LabelInfo', 'latched': True}},
                          timeout=20)
    label_info = recorded(late).get('/label_info', [])
    # Checked at the end: a reload republishes LabelInfo anyway, so it is read before that.

    reload = subprocess.run(['ros2', 'service', 'call', '/classifier/reload',
                             'std_srvs/srv/Trigger'], env=ros2_cli, capture_output=True,
                            text=True, timeout=30)
    assert 'success=True' in reload.stdout and 'database version 2' in reload.stdout, \
        reload.stdout + reload.stderr

    ros2_until(ros2_cli, 'lifecycle', 'set', '/classifier', 'deactivate',
               expect='Transitioning successful')
    assert 'inactive [2]' in ros2_until(ros2_cli, 'lifecycle', 'get', '/classifier',
                                        expect='inactive')
    ros2_until(ros2_cli, 'lifecycle', 'set', '/classifier', 'activate',
               expect='Transitioning successful')
    assert len(classify_frames(ros2_cli)) >= FLOWING, launched.output

    assert label_info, 'no LabelInfo for a late subscriber'
    assert label_info[-1]['threshold'] == 0.5, label_info[-1]


@pytest.mark.slow
def test_ros2_run_with_the_shipped_config_equals_the_launch_file(ros2, ros2_cli, tiny_onnx):
    # In a domain of its own, so both start at once and each CLI call sees one /classifier.
    run_env = dict(ros2_cli, ROS_DOMAIN_ID=str(next(domain_ids)))
    run = ros2('run', 'dl_perception', 'classifier_node', '--ros-args', '--params-file',
               str(SHIPPED_CONFIG), '-p', f'model_path:={tiny_onnx}', env=run_env)
    launch_classifier(ros2, tiny_onnx)
    run.wait_for('active: ')
    by_run, by_launch = dump_parameters(run_env), dump_parameters(ros2_cli)
    assert by_run['model_path'] == str(tiny_onnx)
    shipped = yaml.safe_load(SHIPPED_CONFIG.read_text())['/**']['ros__parameters']
    assert set(shipped) <= set(by_run), set(shipped) - set(by_run)
    differ = {name: (by_run.get(name), by_launch.get(name))
              for name in sorted(set(by_run) | set(by_launch))
              if by_run.get(name) != by_launch.get(name)}
    assert not differ, differ


@pytest.mark.slow
@pytest.mark.parametrize('class_id_format', ['index', 'name'])
def test_upstream_consumer_maps_class_ids_through_label_info(ros2, ros2_cli,
                                                             upstream_vision_msgs_env,
                                                             tiny_onnx, class_id_format):
    # 'index' is the default: the node gets no class_id_format for it.
    chosen = [] if class_id_format == 'index' else ['-p', f'class_id_format:={class_id_format}']
    node = ros2('run', 'dl_perception', 'classifier_node', '--ros-args', '-p',
                f'model_path:={tiny_onnx}', '-p', 'providers:=[cpu]', *chosen)
    node.wait_for('active: ')
    consumer = subprocess.Popen([sys.executable, str(HELPERS / 'upstream_consumer.py'), '30',
                                 str(FLOWING)], env=upstream_vision_msgs_env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert read_line(consumer.stdout) == 'ready'  # LabelInfo came late, latched
    publish(ros2_cli, indices=list(range(10)), topics=['image'], rate=10, settle=1.0)
    out, err = consumer.communicate(timeout=90)
    assert consumer.returncode == 0, err
    report = json.loads(out.splitlines()[-1])
    assert report['labels'] and len(report['labels']) == 10, report
    assert len(report['results']) >= FLOWING, (report, node.output)
    expected = expected_labels(tiny_onnx, 10)
    for message in report['results']:
        index = message['header']['stamp']['nanosec']
        top = message['results'][0]
        if class_id_format == 'index':
            # vision_msgs: class_id is the class index; its name comes from LabelInfo.
            assert all(h['class_id'] in map(str, range(10)) for h in message['results']), \
                message
            assert top['label'] == expected[index], message
        else:
            assert top['class_id'] == expected[index], message


@pytest.mark.slow
def test_shipped_config_on_a_cpu_machine_runs_on_the_cpu_without_errors(
        ros2, ros2_cli, tiny_onnx):
    launched = launch_classifier(ros2, tiny_onnx)
    # A camera for the whole check: without input the node rightly reports no OK.
    camera = subprocess.Popen([sys.executable, str(HELPERS / 'ros_probe.py'), 'publish',
                               json.dumps({'indices': list(range(20)), 'topics': ['image'],
                                           'rate': 10, 'repeat': 5})],
                              env=ros2_cli, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        # Eight reports, the last judged: a camera still starting is rightly a WARN (4 were
        # too few on a loaded CI machine).
        reports = diagnostics(ros2_cli, count=8)
    finally:
        camera.kill()
        camera.wait()
    launched.stop()
    found = [text for text in LIBRARY_ERRORS if text in launched.output]
    assert not found, (found, launched.output)
    status = reports[-1]
    assert status['name'] == '/classifier', status
    assert status['level'] == 0, status
    assert 'CPUExecutionProvider' in (status['message'] + values_of(status)['providers in use'])
