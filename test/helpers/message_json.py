"""Turn any ROS message into plain JSON-able values, field by field, for comparisons."""

from __future__ import annotations

from typing import Any

import numpy as np


def to_plain(value: Any) -> Any:
    """Recursively convert a message (or a field value) to dicts, lists and scalars."""
    if hasattr(value, 'get_fields_and_field_types'):
        return {name: to_plain(getattr(value, name))
                for name in value.get_fields_and_field_types()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [to_plain(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):  # `byte` fields (e.g. DiagnosticStatus.level)
        return value[0] if len(value) == 1 else list(value)
    return value
