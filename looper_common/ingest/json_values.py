"""JSON payloads read the way Spark read them, so parsing in Python keeps every rule.

Ingestion used to parse payloads with Spark: ``from_json`` with every field as text
(a scalar's JSON text, a nested value re-serialized by Jackson), then ``try_cast`` to
numbers and booleans. These functions give the same text and the same casts, so the
checks, the quarantine reasons and the stored values stay what they were:
``tests/integration/test_event_parsing.py`` compares both on crafted payloads.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

import msgspec

_decode = msgspec.json.Decoder().decode
_JAVA_SPACE = "".join(map(chr, [*range(33), 127]))  # Spark's trimAll: ASCII spaces and controls
_JAVA_TRIM = "".join(chr(c) for c in range(33))  # String.trim: every char <= ' '
_JAVA_DOUBLE = re.compile(
    r"[+-]?(?:NaN|Infinity|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[fFdD]?)\Z"
)
_JAVA_HEX_DOUBLE = re.compile(r"([+-]?)0[xX]((?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?\d+)[fFdD]?\Z")
_SPECIAL_DOUBLES = {
    "inf": math.inf, "+inf": math.inf, "infinity": math.inf, "+infinity": math.inf,
    "-inf": -math.inf, "-infinity": -math.inf, "nan": math.nan,
}
_TRUE, _FALSE = frozenset({"t", "true", "y", "yes", "1"}), frozenset({"f", "false", "n", "no", "0"})
_LONG = re.compile(r"[+-]?\d+\Z")
_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1


def decode_object(payload: str | bytes | None) -> tuple[dict[str, Any] | None, bool]:
    """``(fields, is_object)`` of a payload as Spark saw it.

    ``fields`` is what ``from_json`` read (None when it read nothing); ``is_object``
    is whether ``json_object_keys`` called it a JSON object. Both ignore text after
    the first complete value; only ``from_json`` takes ``NaN`` and ``Infinity``.
    """
    if payload is None:
        return None, False
    try:
        value = _decode(payload)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return _decode_lenient(payload)
    return (value, True) if type(value) is dict else (None, False)


def _decode_lenient(payload: str | bytes) -> tuple[dict[str, Any] | None, bool]:
    """The slow path: trailing text, non-finite literals, numbers beyond a double."""
    text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
    non_finite: list[str] = []

    def constant(name: str) -> float:
        non_finite.append(name)
        return float(name)

    decoder = json.JSONDecoder(parse_constant=constant)
    try:
        value, _ = decoder.raw_decode(text.lstrip(" \t\n\r"))
    except (json.JSONDecodeError, RecursionError):
        return None, False
    if type(value) is not dict:
        return None, False
    return value, not non_finite


def java_double_text(value: float) -> str:
    """``Double.toString`` (JDK 17+ layout, shortest round-trip digits)."""
    if value != value:
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    text = repr(value)
    magnitude = abs(value)
    if 1e-3 <= magnitude < 1e7:  # repr's and Java's layouts agree here
        return text
    if value == 0:
        return text  # "0.0", "-0.0"
    sign = "-" if text[0] == "-" else ""
    if magnitude < 2**63 and value.is_integer():
        digits, point = _java_long_digits(int(magnitude))
    else:
        mantissa, _, exp = text.lstrip("-").partition("e")
        whole, _, frac = mantissa.partition(".")
        digits = whole + frac
        stripped = digits.lstrip("0")
        point = len(whole) + int(exp or 0) - (len(digits) - len(stripped))
        digits = stripped.rstrip("0") or "0"
    return f"{sign}{digits[0]}.{digits[1:] or '0'}E{point - 1}"


# FloatingDecimal.insignificantDigitsNumber (JDK 17), indexed by the power of two past 2^54
_INSIGNIFICANT = (
    0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 8, 8, 8, 9, 9, 9, 9,
    10, 10, 10, 11, 11, 11, 12, 12, 12, 12, 13, 13, 13, 14, 14, 14, 15, 15, 15, 15, 16, 16, 16, 17, 17, 17,
    18, 18, 18, 19,
)


def _java_long_digits(number: int) -> tuple[str, int]:
    """JDK 17 prints an integral double below 2^63 from its exact digits, not the shortest ones.

    Returns the significant digits and the decimal point's position after the first.
    """
    p2 = number.bit_length() - 1 - 54
    insignificant = _INSIGNIFICANT[p2] if 1 < p2 < len(_INSIGNIFICANT) else 0
    if insignificant:
        pow10 = 10**insignificant
        number, residue = divmod(number, pow10)
        number += residue >= pow10 // 2
    digits = str(number)
    return digits.rstrip("0") or "0", len(digits) + insignificant


def _compact(value: Any) -> str:
    """A nested value as Jackson writes it back: compact, doubles as Java prints them."""
    if type(value) is str:
        return json.dumps(value, ensure_ascii=False)
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if type(value) is int:
        return str(value)
    if type(value) is float:
        return _double_text(value)
    if type(value) is dict:
        return "{" + ",".join(f"{json.dumps(k, ensure_ascii=False)}:{_compact(v)}" for k, v in value.items()) + "}"
    return "[" + ",".join(_compact(v) for v in value) + "]"


def _double_text(value: float) -> str:
    """Jackson writes a non-finite double (a literal or an overflow) as a quoted string."""
    return java_double_text(value) if math.isfinite(value) else f'"{java_double_text(value)}"'


def json_text(value: Any) -> str | None:
    """A JSON value read into a Spark ``string`` field: its text (None for null)."""
    kind = type(value)
    if kind is str:
        return value
    if value is None:
        return None
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    return _compact(value)


def text_map(value: Any) -> dict[str, str | None] | None:
    """A JSON value read into a Spark ``map<string, string>`` field (None unless an object)."""
    if type(value) is not dict:
        return None
    return {k: (v if type(v) is str else json_text(v)) for k, v in value.items()}


def feature_texts(values: dict[str, Any]) -> dict[str, str | None]:
    """``text_map`` of an object, with the usual feature values' texts made inline."""
    texts = {}
    for key, value in values.items():
        kind = type(value)
        if kind is str:
            texts[key] = value
        elif kind is float and 1e-3 <= abs(value) < 1e7:
            texts[key] = repr(value)
        elif kind is bool:
            texts[key] = "true" if value else "false"
        elif kind is int:
            texts[key] = str(value)
        else:
            texts[key] = json_text(value)
    return texts


def to_long(text: str | None) -> int | None:
    """``try_cast(text AS bigint)``."""
    if text is None:
        return None
    text = text.strip(_JAVA_SPACE)
    if not _LONG.match(text) or not text.isascii():
        return None
    number = int(text)
    return number if _LONG_MIN <= number <= _LONG_MAX else None


def to_double(text: str | None) -> float | None:
    """``try_cast(text AS double)``: Java's ``parseDouble`` plus Spark's special literals."""
    if text is None:
        return None
    trimmed = text.strip(_JAVA_TRIM)
    if _JAVA_DOUBLE.match(trimmed) and trimmed.isascii():
        return float(trimmed.rstrip("fFdD").replace("Infinity", "inf"))
    hexa = _JAVA_HEX_DOUBLE.match(trimmed)
    if hexa:
        return float.fromhex(hexa.group(1) + "0x" + hexa.group(2))
    return _SPECIAL_DOUBLES.get(trimmed.lower())


def to_boolean(text: str | None) -> bool | None:
    """``try_cast(text AS boolean)``."""
    if text is None:
        return None
    word = text.strip(_JAVA_SPACE).lower()
    return True if word in _TRUE else False if word in _FALSE else None


def double_map(texts: dict[str, str | None] | None, cast: Callable[[str | None], float | None] = to_double):
    """A text map's values cast to double (None stays None, so a check can find it)."""
    if texts is None:
        return None
    return {k: cast(v) for k, v in texts.items()}
