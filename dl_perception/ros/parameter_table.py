"""
A node's parameters as one table of name, default, description and allowed values.

Both nodes declare from a table, so every parameter gets a descriptor (with ranges where they
apply), and ``ParameterTable.check`` is the one place that says why a value is refused, in the
same words for every node, at start-up and on every later change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
import difflib
import math
from typing import Any

from rcl_interfaces.msg import FloatingPointRange
from rcl_interfaces.msg import IntegerRange
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node


@dataclass(frozen=True)
class Parameter:
    """
    One declared parameter; ``choices`` or a numeric ``low``..``high`` bound its values.

    ``check`` returns why a value is refused (without the name and value, which the table
    adds), or None.
    """

    name: str
    default: Any
    description: str
    choices: tuple = ()
    low: float | None = None
    high: float | None = None
    read_only: bool = False
    check: Callable[[Any], str | None] | None = None

    def descriptor(self) -> ParameterDescriptor:
        """Build the ROS descriptor: description, allowed values and numeric range."""
        text = self.description
        if self.choices:
            text += f' One of: {", ".join(map(str, self.choices))}.'
        descriptor = ParameterDescriptor(description=text, read_only=self.read_only)
        if self.low is not None:
            if isinstance(self.default, int):
                descriptor.integer_range = [IntegerRange(
                    from_value=int(self.low), to_value=int(self.high), step=1)]
            elif isinstance(self.default, float):
                descriptor.floating_point_range = [FloatingPointRange(
                    from_value=float(self.low), to_value=float(self.high), step=0.0)]
        return descriptor


def _shown(value: Any) -> Any:
    """Return ``value`` as it reads best in a message: arrays (array.array('d'), ...) as lists."""
    return value if isinstance(value, (bool, int, float, str)) else list(value)


class ParameterTable:
    """The parameters of one node, iterable in declaration order."""

    def __init__(self, *parameters: Parameter) -> None:
        self.by_name = {parameter.name: parameter for parameter in parameters}

    def __iter__(self) -> Iterator[Parameter]:
        return iter(self.by_name.values())

    def check(self, name: str, value: Any) -> str | None:
        """Return why ``value`` is not acceptable for parameter ``name``, or None if it is."""
        parameter = self.by_name.get(name)
        if parameter is None:
            return None
        shown = _shown(value)
        # NaN passes every range check.
        numbers = shown if isinstance(shown, list) else [shown]
        if any(isinstance(n, float) and not math.isfinite(n) for n in numbers):
            reason = 'expected finite numbers'
        elif parameter.choices and value not in parameter.choices:
            reason = f'allowed: {", ".join(map(repr, parameter.choices))}'
        else:
            reason = parameter.check(value) if parameter.check else None
        return f'{name} = {shown!r}; {reason}' if reason else None

    def check_changes(self, parameters: Iterable[Any]) -> str | None:
        """Return why the first refused one of these rclpy Parameters is, or None."""
        for parameter in parameters:
            reason = self.check(parameter.name, parameter.value)
            if reason:
                return reason
        return None

    def declare(self, node: Node) -> dict[str, Any]:
        """
        Declare every parameter on ``node`` and return the values in force.

        :raises ValueError: some values are refused (the message gives every reason).
        """
        values = {parameter.name: node.declare_parameter(
            parameter.name, parameter.default, parameter.descriptor()).value for parameter in self}
        problems = [reason for name, value in values.items()
                    if (reason := self.check(name, value))]
        if problems:
            raise ValueError('; '.join(problems))
        return values

    def warn_unknown_overrides(self, node: Node) -> str | None:
        """Log (and return) what ``unknown`` says about ``node``'s undeclared overrides."""
        message = self.unknown(name for name in node._parameter_overrides
                               if not node.has_parameter(name))
        if message:
            node.get_logger().warning(message)
        return message

    def unknown(self, names: Iterable[str]) -> str | None:
        """
        Describe overrides of undeclared parameters, each with the closest declared name.

        ROS ignores an override of an undeclared parameter without a word, so a misspelt
        ``-p imput_size:=224`` would silently do nothing. None when ``names`` is empty.
        """
        unknown = sorted(set(names))
        if not unknown:
            return None
        described = []
        for name in unknown:
            close = difflib.get_close_matches(name, self.by_name, n=1, cutoff=0.6)
            described.append(f'{name} (did you mean {close[0]}?)' if close else name)
        return (f'ignoring parameters this node does not have: {", ".join(described)}; '
                f'`ros2 param list` shows the declared ones')
