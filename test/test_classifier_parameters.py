"""The classifier node's parameter checks, in-process: every refusal says why."""

from __future__ import annotations

from array import array

from dl_perception.ros.classifier_parameters import PARAMETERS
from dl_perception.ros.qos_matching import choose_reliability
from paths import REPO_ROOT
import pytest
from rclpy.qos import QoSProfile
from rclpy.qos import ReliabilityPolicy
from rclpy.topic_endpoint_info import TopicEndpointInfo
import yaml


def test_array_values_as_rclpy_gives_them_are_checked_too():
    assert 'expected finite numbers' in PARAMETERS.check('std', array('d', [float('inf')]))


def test_every_default_is_accepted():
    assert [p.name for p in PARAMETERS if PARAMETERS.check(p.name, p.default)] == []


@pytest.mark.parametrize('name, value, expected', [
    ('mean', [float('nan')], 'expected finite numbers'),
    ('std', [float('inf')], 'expected finite numbers'),
    ('std', [1e-310], 'greater than 1e-06'),
    ('std', [0.5, 0.5, 0.0], 'greater than 1e-06'),
    ('mean', [1.5], 'from 0 to 1'),
    ('mean', [-0.1, 0.5, 0.5], 'from 0 to 1'),
    ('mean', [0.5, 0.5], 'give 1 or 3 values'),
    ('score_threshold', float('nan'), 'expected finite numbers'),
    ('max_rate_hz', float('inf'), 'expected finite numbers'),
    ('smoothing', float('-inf'), 'expected finite numbers'),
    ('image_topics', ['bad topic!'], "'bad topic!' is not a valid topic name"),
    ('image_topics', ['', ''], 'give at least one topic'),
    ('providers', ['gpu'], 'give [auto], or one or more of tensorrt, cuda, cpu'),
    ('providers', ['auto', 'cpu'], 'give [auto], or one or more of tensorrt, cuda, cpu'),
])
def test_bad_values_are_refused_with_the_reason(name, value, expected):
    reason = PARAMETERS.check(name, value)
    assert reason is not None and reason.startswith(f'{name} = ') and expected in reason


@pytest.mark.parametrize('name, value', [
    ('mean', [0.0]), ('mean', [0.485, 0.456, 0.406]), ('std', [0.229, 0.224, 0.225]),
    ('std', [1 / 255]), ('image_topics', ['camera/image_raw/compressed', '/left/image']),
])
def test_good_values_pass(name, value):
    assert PARAMETERS.check(name, value) is None


def publisher(reliability: ReliabilityPolicy) -> TopicEndpointInfo:
    return TopicEndpointInfo(qos_profile=QoSProfile(depth=1, reliability=reliability))


def test_auto_reliability_subscribes_before_any_publisher_shows_up():
    best_effort, reliable = ReliabilityPolicy.BEST_EFFORT, ReliabilityPolicy.RELIABLE
    assert choose_reliability('auto', []) == best_effort  # hears every kind of publisher
    assert choose_reliability('auto', [publisher(reliable)], best_effort) == reliable
    assert choose_reliability('auto', [publisher(reliable), publisher(best_effort)],
                              reliable) == best_effort
    assert choose_reliability('auto', [], reliable) == reliable  # publisher gone: keep it
    assert choose_reliability('reliable', []) == reliable


def test_the_shipped_config_is_the_node_defaults_key_by_key():
    """`ros2 run` without the file must behave like the launch file, which loads it."""
    shipped = yaml.safe_load((REPO_ROOT / 'config' / 'classifier.yaml').read_text())
    values = shipped['/**']['ros__parameters']
    assert sorted(values) == sorted(p.name for p in PARAMETERS)  # every key declared, no gap
    assert values == {p.name: p.default for p in PARAMETERS}


def test_unknown_overrides_are_named_with_the_closest_declared_name():
    assert PARAMETERS.unknown([]) is None
    message = PARAMETERS.unknown(['imput_size', 'crop_fractoin', 'zzz'])
    assert message.startswith('ignoring parameters this node does not have: ')
    assert 'crop_fractoin (did you mean crop_fraction?)' in message
    assert 'imput_size (did you mean input_size?)' in message and ', zzz;' in message
