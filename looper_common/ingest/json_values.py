"""An event's JSON values in Python terms: the type checks of its fields and a feature value's text.

msgspec decodes a payload into ``str``, ``int``, ``float``, ``bool``, ``None``,
``dict`` and ``list``. Each check takes a field's name and its (non-null) value and
returns the reason it fails, naming the field and what it got, or None. A feature
value is stored in bronze's ``map<string, string>`` in one text per JSON type, which
training (``training.examples.typed_features``) casts back to the same value.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any

import msgspec

from looper_common.contracts import event_rules

Check = Callable[[str, Any], "str | None"]
_DOUBLE_MAX = sys.float_info.max
_encode = msgspec.json.Encoder().encode


json_kind = event_rules.kind_of  # what a decoded JSON value is, as a reason names it


def is_number(value: Any) -> bool:
    """A JSON number that a double holds: a float, or an int within a double's range (not a bool)."""
    kind = type(value)
    return kind is float or (kind is int and -_DOUBLE_MAX <= value <= _DOUBLE_MAX)


string = event_rules.text  # a str with no lone surrogate


def epoch_ms(name: str, value: Any) -> str | None:
    """A JSON integer: ``1767225600000.0`` and ``1.7672256e12`` are numbers, not integers."""
    return None if type(value) is int else f"{name}: expected integer epoch milliseconds, got {json_kind(value)}"


def number(name: str, value: Any) -> str | None:
    if is_number(value):
        return event_rules.finite(name, value)
    if type(value) is int:
        return f"{name}: the number {value} is beyond a double's range"
    return f"{name}: expected a number, got {json_kind(value)}"


def boolean(name: str, value: Any) -> str | None:
    return None if type(value) is bool else f"{name}: expected true or false, got {json_kind(value)}"


def json_object(name: str, value: Any) -> str | None:
    return None if type(value) is dict else f"{name}: expected an object, got {json_kind(value)}"


def number_map(noun: str) -> Check:
    """The check of an object of numbers; a failure names the keys whose value is not one."""

    def check(name: str, value: Any) -> str | None:
        if type(value) is not dict:
            return json_object(name, value)
        bad = [key for key, item in value.items() if not is_number(item)]
        if bad:
            return f"{name}: non-numeric {noun} for {', '.join(bad)}"
        bad = [key for key, item in value.items() if not math.isfinite(item)]
        return f"{name}: non-finite {noun} for {', '.join(bad)}" if bad else None

    return check


def feature_texts(values: dict[str, Any]) -> dict[str, str | None]:
    """A features object's values as text, one form per JSON type.

    A string as is, a boolean ``true``/``false``, an integer ``str(int)``, a float
    ``repr(float)`` (the shortest text that reads back as the same double, so ``1e-05``
    and ``0.00001`` are both stored as ``1e-05``), an object or array as compact JSON;
    null stays null.
    """
    texts: dict[str, str | None] = {}
    for key, value in values.items():
        kind = type(value)
        if kind is str:
            texts[key] = value
        elif kind is float:
            texts[key] = repr(value)
        elif kind is bool:
            texts[key] = "true" if value else "false"
        elif kind is int:
            texts[key] = str(value)
        elif value is None:
            texts[key] = None
        else:
            texts[key] = _encode(value).decode()
    return texts
