"""vision_msgs cross a real process boundary over ROS 2 with every field intact."""

from __future__ import annotations

import json

import pytest
from ros_testing import read_line
from ros_testing import start_helper

SAMPLE = {
    'frame_id': 'camera_optical_frame/ünïcode',
    'stamp': [1_700_000_123, 987_654_321],
    'scored_labels': [['sneaker', 0.8125], ['sandal', 0.1234567890123], ['bag', 1e-9]],
    'detections': [
        {'box': [320.5, 240.25, 64.0, 48.5], 'scored_labels': [['bag', 0.75]], 'id': 'tile-3'},
        {'box': [10.0, 20.0, 8.0, 16.0], 'scored_labels': [['coat', 0.5], ['shirt', 0.25]],
         'id': ''},
    ],
    'labels': ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt',
               'Sneaker', 'Bag', 'Ankle boot'],
    'threshold': 0.25,
}


def expected_header() -> dict:
    return {'stamp': {'sec': SAMPLE['stamp'][0], 'nanosec': SAMPLE['stamp'][1]},
            'frame_id': SAMPLE['frame_id']}


def expected_detection(detection: dict) -> dict:
    center_x, center_y, width, height = detection['box']
    identity_pose = {
        'pose': {'position': {'x': 0.0, 'y': 0.0, 'z': 0.0},
                 'orientation': {'x': 0.0, 'y': 0.0, 'z': 0.0, 'w': 1.0}},
        'covariance': [0.0] * 36,
    }
    return {
        'header': expected_header(),
        'results': [{'hypothesis': {'class_id': label, 'score': score}, 'pose': identity_pose}
                    for label, score in detection['scored_labels']],
        'bbox': {'center': {'position': {'x': center_x, 'y': center_y}, 'theta': 0.0},
                 'size_x': width, 'size_y': height},
        'id': detection['id'],
    }


@pytest.mark.ros
def test_vision_messages_cross_processes_intact(ros_env):
    publisher = start_helper('vision_publisher.py', json.dumps(SAMPLE), env=ros_env)
    try:
        assert read_line(publisher.stdout) == 'publishing', publisher.stderr.read()
        echo = start_helper('vision_echo.py', env=ros_env)
        out, err = echo.communicate(timeout=60)
        assert echo.returncode == 0, err
    finally:
        publisher.terminate()
        publisher.communicate(timeout=30)

    received = {line['topic']: line['message'] for line in map(json.loads, out.splitlines())}
    assert received['classification'] == {
        'header': expected_header(),
        'results': [{'class_id': label, 'score': score}
                    for label, score in SAMPLE['scored_labels']],
    }
    assert received['detections'] == {
        'header': expected_header(),
        'detections': [expected_detection(d) for d in SAMPLE['detections']],
    }
    assert received['label_info'] == {
        'header': expected_header(),
        'class_map': [{'class_id': index, 'class_name': name}
                      for index, name in enumerate(SAMPLE['labels'])],
        'threshold': SAMPLE['threshold'],
    }
