"""The image source node's parameter checks, in-process: the same wording as the classifier's."""

from __future__ import annotations

from dataclasses import fields

from dl_perception.ros.image_source_parameters import PARAMETERS
from dl_perception.ros.image_source_parameters import Settings
import pytest


def test_settings_has_one_field_per_parameter_of_its_type():
    assert [(f.name, f.type) for f in fields(Settings)] == [
        (p.name, type(p.default).__name__) for p in PARAMETERS]


def test_every_default_is_accepted_and_every_parameter_is_read_only():
    assert [p.name for p in PARAMETERS if PARAMETERS.check(p.name, p.default)] == []
    assert all(p.descriptor().read_only for p in PARAMETERS)


@pytest.mark.parametrize('name, value, expected', [
    ('rate_hz', 0.0, 'rate_hz = 0.0; must be > 0'),
    ('rate_hz', float('inf'), 'rate_hz = inf; expected finite numbers'),
    ('encoding', 'yuv', "encoding = 'yuv'; allowed: 'bgr8', 'rgb8', 'mono8'"),
    ('compression', 'webp', "compression = 'webp'; allowed: 'jpeg', 'png'"),
    ('reliability', 'auto', "reliability = 'auto'; allowed: 'reliable', 'best_effort'"),
    ('source', 'webcam:0', "source = 'webcam:0'; must be 'fashion-mnist:<split>'"),
    ('source', 'fashion-mnist:val', 'fashion-mnist split must be one of'),
])
def test_bad_values_are_refused_with_the_reason(name, value, expected):
    assert expected in PARAMETERS.check(name, value)


@pytest.mark.parametrize('name, value', [
    ('rate_hz', 0.5), ('encoding', 'mono8'), ('source', 'folder:/tmp'), ('source', 'camera:0'),
])
def test_good_values_pass(name, value):
    assert PARAMETERS.check(name, value) is None


def test_ranges_come_from_the_table():
    quality = PARAMETERS.by_name['jpeg_quality'].descriptor().integer_range[0]
    assert (quality.from_value, quality.to_value) == (1, 100)
