"""The shared parameter mechanism of both nodes, in-process: descriptors, checks, declaring."""

from __future__ import annotations

from array import array
from types import SimpleNamespace

from dl_perception.ros.parameter_table import Parameter
from dl_perception.ros.parameter_table import ParameterTable
import pytest


def _even(value: int) -> str | None:
    return None if value % 2 == 0 else 'give an even number'


TABLE = ParameterTable(
    Parameter('count', 2, 'How many.', low=0, high=10, check=_even),
    Parameter('gain', 0.5, 'How much.', low=0.0, high=1.0, read_only=True),
    Parameter('mode', 'a', 'Which.', choices=('a', 'b')),
    Parameter('weights', [1.0], 'Per channel.'),
    Parameter('verbose', False, 'Say more.'),
)


class _FakeNode:
    """Declares like rclpy: the override if one was given, else the default."""

    def __init__(self, **overrides) -> None:
        self.overrides = overrides
        self.descriptors = {}

    def declare_parameter(self, name, default, descriptor):
        self.descriptors[name] = descriptor
        return SimpleNamespace(value=self.overrides.get(name, default))


def test_descriptors_carry_ranges_choices_and_read_only():
    by_name = TABLE.by_name
    count, gain = by_name['count'].descriptor(), by_name['gain'].descriptor()
    assert (count.integer_range[0].from_value, count.integer_range[0].to_value) == (0, 10)
    assert not count.floating_point_range and not count.read_only
    assert gain.floating_point_range[0].to_value == 1.0 and gain.read_only
    assert by_name['mode'].descriptor().description == 'Which. One of: a, b.'
    verbose = by_name['verbose'].descriptor()
    assert not verbose.integer_range and not verbose.floating_point_range


@pytest.mark.parametrize('name, value, expected', [
    ('gain', float('nan'), 'gain = nan; expected finite numbers'),
    ('weights', array('d', [float('inf')]), 'weights = [inf]; expected finite numbers'),
    ('mode', 'c', "mode = 'c'; allowed: 'a', 'b'"),
    ('count', 3, 'count = 3; give an even number'),
])
def test_every_refusal_names_the_parameter_the_value_and_the_reason(name, value, expected):
    assert TABLE.check(name, value) == expected


def test_good_and_undeclared_values_pass():
    assert [p.name for p in TABLE if TABLE.check(p.name, p.default)] == []
    assert TABLE.check('elsewhere', float('nan')) is None


def test_check_changes_returns_the_first_refusal():
    changes = [SimpleNamespace(name='count', value=4), SimpleNamespace(name='mode', value='x'),
               SimpleNamespace(name='count', value=5)]
    assert TABLE.check_changes(changes) == "mode = 'x'; allowed: 'a', 'b'"
    assert TABLE.check_changes(changes[:1]) is None


def test_declare_declares_everything_and_returns_the_values_in_force():
    node = _FakeNode(mode='b')
    assert TABLE.declare(node) == {'count': 2, 'gain': 0.5, 'mode': 'b', 'weights': [1.0],
                                   'verbose': False}
    assert list(node.descriptors) == [p.name for p in TABLE]


def test_declare_refuses_with_every_reason():
    with pytest.raises(ValueError) as refused:
        TABLE.declare(_FakeNode(count=3, mode='c'))
    assert str(refused.value) == "count = 3; give an even number; mode = 'c'; allowed: 'a', 'b'"


def test_unknown_names_get_the_closest_declared_one():
    assert TABLE.unknown([]) is None
    assert TABLE.unknown(['mdoe', 'zzz']).startswith(
        'ignoring parameters this node does not have: mdoe (did you mean mode?), zzz;')
