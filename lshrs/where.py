"""The filter language: Mongo-style operators on metadata, with JSON's semantics, the same in Python and SQL.

A filter is a dict. ``{"year": 2021, "lang": "en"}`` asks for both keys to
equal those values; an operator dict tests one key, ``{"year": {"$gte":
2021, "$lt": 2024}}`` (several operators: all of them); ``$and`` / ``$or``
take lists of filters and ``$not`` one filter, at the top or on a key.

=============  ==========================================================
``$eq``         equal (the default for a bare value)
``$ne``         not equal; also true when the key is missing
``$gt`` ...     ``$gt $gte $lt $lte``: numbers with numbers, strings with
                strings (by code point); anything else does not match
``$between``    ``[low, high]``: ``$gte`` low and ``$lte`` high
``$in``         equal to one of a list; ``$nin``: to none (or missing)
``$exists``     the key is present (``True``) or absent (``False``)
``$contains``   the value is a list holding this scalar, or a string
                holding this string (as Python's ``in``)
``$icontains``  a string holding this string, ignoring case (evaluated in
                Python on every store)
``$size``       the value is a list of this many items
``$like``       a string matching a SQL LIKE pattern: ``%`` any run of
                characters, ``_`` one; case-sensitive, no escape character
``$ilike``      ``$like`` ignoring case (evaluated in Python on every store)
=============  ==========================================================

Why JSON's semantics: metadata is stored as JSON, and SQL engines compare
JSON by type first. A bool is not a number (``{"flag": 1}`` does not match
``True``), ``1`` equals ``1.0``, a string is never a number, and a list is
not equal to its members (use ``$contains``). Operands are JSON scalars:
str, int (64-bit), finite float, bool or None, and for ``$eq``, ``$ne``,
``$in`` and ``$nin`` also lists and dicts of them (compared whole, as JSON);
anything else raises before any I/O, as do unknown operators. The stores' SQL
(stores/sql_where.py) is checked against `matches` on every operator.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

COMPARISONS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte")
LISTS = ("$in", "$nin")
OPERATORS = (*COMPARISONS, "$between", *LISTS, "$exists", "$contains", "$icontains", "$size", "$like", "$ilike")
# Case folding differs between SQL engines and Python: these run in Python on every store.
PYTHON_ONLY = ("$ilike", "$icontains")
LOGICAL = ("$and", "$or", "$not")
_ORDERED = ("$gt", "$gte", "$lt", "$lte")
_INT64 = (-(2**63), 2**63 - 1)


@dataclass(frozen=True)
class Test:
    """One operator on one key."""

    key: str
    op: str
    value: Any


@dataclass(frozen=True)
class AllOf:
    parts: tuple[Where, ...]


@dataclass(frozen=True)
class AnyOf:
    parts: tuple[Where, ...]


@dataclass(frozen=True)
class Not:
    part: Where


Where = Test | AllOf | AnyOf | Not


# -- parsing -------------------------------------------------------------------------


def parse(filter: Any) -> Where:
    """The checked expression of a filter dict; TypeError / ValueError naming the offending part."""
    if not isinstance(filter, Mapping):
        raise TypeError(f"filter: expected a dict, got {type(filter).__name__}")
    parts = [_clause(key, value) for key, value in filter.items()]
    return parts[0] if len(parts) == 1 else AllOf(tuple(parts))  # {} is AllOf(()): every document passes


def _clause(key: Any, value: Any) -> Where:
    if not isinstance(key, str):
        raise TypeError(f"filter: keys are metadata keys (str) or $and/$or/$not, got {type(key).__name__} {key!r}")
    if key in ("$and", "$or"):
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence) or not value:
            raise ValueError(f"filter: {key} takes a non-empty list of filters, got {value!r}")
        parts = tuple(parse(part) for part in value)
        return AllOf(parts) if key == "$and" else AnyOf(parts)
    if key == "$not":
        return Not(parse(value))
    if key.startswith("$"):
        raise ValueError(f"filter: unknown operator {key!r} at the top; expected a key or one of {', '.join(LOGICAL)}")
    if isinstance(value, Mapping) and any(isinstance(k, str) and k.startswith("$") for k in value):
        if not all(isinstance(k, str) and k.startswith("$") for k in value):
            raise ValueError(f"filter[{key!r}]: {dict(value)!r} mixes operators and object keys")
        tests = [_operator(key, op, operand) for op, operand in value.items()]
        return tests[0] if len(tests) == 1 else AllOf(tuple(tests))
    return Test(key, "$eq", _value(key, "$eq", value))


def _operator(key: str, op: Any, operand: Any) -> Where:
    if op == "$not":
        if not isinstance(operand, Mapping):
            raise ValueError(f"filter[{key!r}]: $not takes an operator dict, e.g. {{'$gt': 5}}")
        return Not(_clause(key, operand))
    if op not in OPERATORS:
        raise ValueError(f"filter[{key!r}]: unknown operator {op!r}; expected one of {', '.join(OPERATORS)}, $not")
    if op == "$between":
        if isinstance(operand, (str, bytes, Mapping)) or not isinstance(operand, Sequence) or len(operand) != 2:
            raise ValueError(f"filter[{key!r}]: $between takes [low, high], got {operand!r}")
        return AllOf((_operator(key, "$gte", operand[0]), _operator(key, "$lte", operand[1])))  # type: ignore[arg-type]
    if op in LISTS:
        if isinstance(operand, (str, bytes, Mapping)) or not isinstance(operand, Sequence):
            raise ValueError(f"filter[{key!r}]: {op} takes a list of values, got {operand!r}")
        return Test(key, op, tuple(_value(key, op, v) for v in operand))
    if op == "$exists":
        if not isinstance(operand, bool):
            raise ValueError(f"filter[{key!r}]: $exists takes True or False, got {operand!r}")
        return Test(key, op, operand)
    if op in ("$like", "$ilike", "$icontains"):
        if not isinstance(operand, str):
            raise ValueError(f"filter[{key!r}]: {op} takes a string, got {operand!r}")
        return Test(key, op, operand)
    if op == "$size":
        if isinstance(operand, bool) or not isinstance(operand, int) or operand < 0:
            raise ValueError(f"filter[{key!r}]: $size takes an int >= 0, got {operand!r}")
        return Test(key, op, operand)
    value = _value(key, op, operand) if op in ("$eq", "$ne") else _scalar(key, op, operand)
    if op in _ORDERED and (value is None or isinstance(value, bool)):
        raise ValueError(f"filter[{key!r}]: {op} compares numbers or strings, got {operand!r}")
    return Test(key, op, value)


def _value(key: str, op: str, value: Any) -> Any:
    """A JSON value operand (lists and dicts of scalars, any depth), checked; lists come back as lists."""
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise TypeError(f"filter[{key!r}]: {op} compares JSON objects, whose keys are strings")
        return {k: _value(key, op, v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_value(key, op, v) for v in value]
    return _scalar(key, op, value)


def _scalar(key: str, op: str, value: Any) -> Any:
    """A JSON scalar operand, checked: what every store can compare the same way."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        if not _INT64[0] <= value <= _INT64[1]:
            raise ValueError(f"filter[{key!r}]: {op} {value} is outside the 64-bit integers stores compare")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"filter[{key!r}]: {op} {value} is not a JSON number")
        return value
    hint = " (use $in, $contains, or $eq for a whole list)" if isinstance(value, (list, tuple)) else ""
    raise TypeError(
        f"filter[{key!r}]: {op} takes a JSON scalar (str, int, float, bool or None), "
        f"got {type(value).__name__} {value!r}{hint}"
    )


# -- evaluating in Python -------------------------------------------------------------


def matches(where: Where, metadata: Mapping[str, Any] | None) -> bool:
    """Whether one document's metadata passes (None counts as empty)."""
    meta = metadata or {}
    if isinstance(where, AllOf):
        return all(matches(part, meta) for part in where.parts)
    if isinstance(where, AnyOf):
        return any(matches(part, meta) for part in where.parts)
    if isinstance(where, Not):
        return not matches(where.part, meta)
    present = where.key in meta
    value = meta.get(where.key)
    op, operand = where.op, where.value
    if op == "$exists":
        return present is operand
    if op == "$ne":
        return not (present and json_equal(value, operand))
    if op == "$nin":
        return not (present and any(json_equal(value, v) for v in operand))
    if not present:
        return False
    if op == "$eq":
        return json_equal(value, operand)
    if op == "$in":
        return any(json_equal(value, v) for v in operand)
    if op == "$contains":
        if isinstance(value, str):
            return isinstance(operand, str) and operand in value
        return isinstance(value, list) and any(json_equal(item, operand) for item in value)
    if op == "$icontains":
        return isinstance(value, str) and operand.casefold() in value.casefold()
    if op == "$size":
        return isinstance(value, list) and len(value) == operand
    if op in ("$like", "$ilike"):
        return isinstance(value, str) and like_regex(operand, op == "$ilike").fullmatch(value) is not None
    return _ordered(op, value, operand)


def kind(value: Any) -> str:
    """The JSON type of a Python value: null, boolean, number, string, array or object."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, (list, tuple)) else "object"


def json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON has it: same type, then same value (1 == 1.0; True is not 1), lists and objects whole."""
    if kind(a) != kind(b):
        return False
    if isinstance(a, Mapping):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    return bool(a == b)


def _ordered(op: str, value: Any, operand: Any) -> bool:
    if kind(value) != kind(operand) or kind(value) not in ("number", "string"):
        return False
    if op == "$gt":
        return bool(value > operand)
    if op == "$gte":
        return bool(value >= operand)
    if op == "$lt":
        return bool(value < operand)
    return bool(value <= operand)


def like_regex(pattern: str, ignore_case: bool = False) -> re.Pattern[str]:
    """A LIKE pattern as a regular expression: % any run of characters, _ exactly one."""
    body = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.compile(body, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def tests(where: Where) -> list[Test]:
    """Every key test in the expression, in order, whatever the and/or/not around it."""
    if isinstance(where, Test):
        return [where]
    if isinstance(where, Not):
        return tests(where.part)
    return [t for part in where.parts for t in tests(part)]


def keys(where: Where) -> set[str]:
    """Every metadata key the expression tests."""
    return {t.key for t in tests(where)}


def ops(where: Where) -> set[str]:
    """Every operator the expression uses."""
    return {t.op for t in tests(where)}


def operands(where: Where) -> list[Any]:
    """Every operand the expression compares with (the members of $in / $nin lists one by one)."""
    return [v for t in tests(where) for v in (t.value if t.op in LISTS else [t.value])]
