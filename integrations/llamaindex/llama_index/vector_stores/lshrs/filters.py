"""LlamaIndex `MetadataFilters` (plus `doc_ids`) as lshrs filters.

An AND of scalar equalities becomes a dict, which the SQL stores test in SQL
(`LSHRS.find` pushes it down); anything else becomes a function of the row
metadata, evaluated in Python on the candidates.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from llama_index.core.vector_stores.types import FilterCondition, FilterOperator, MetadataFilter, MetadataFilters

Filter = dict[str, Any] | Callable[[Mapping[str, Any]], bool]
Test = Callable[[Mapping[str, Any]], bool]

SUPPORTED_OPERATORS = (
    FilterOperator.EQ,
    FilterOperator.NE,
    FilterOperator.GT,
    FilterOperator.GTE,
    FilterOperator.LT,
    FilterOperator.LTE,
    FilterOperator.IN,
    FilterOperator.NIN,
)
_ORDER = {
    FilterOperator.GT: operator.gt,
    FilterOperator.GTE: operator.ge,
    FilterOperator.LT: operator.lt,
    FilterOperator.LTE: operator.le,
}


def to_filter(filters: MetadataFilters | None, doc_ids: Sequence[str] | None) -> Filter | None:
    """An `LSHRS.query` / `LSHRS.find` filter for LlamaIndex filters plus a `doc_ids` restriction.

    An AND of scalar equalities becomes a dict, which the SQL stores test in
    SQL; anything else becomes a function of the row metadata. Empty filters
    and empty `doc_ids` restrict nothing.
    """
    if filters is not None:
        _check_operators(filters)
    equals = _equalities(filters, doc_ids)
    if equals is not None:
        return equals or None
    tests: list[Test] = []
    if filters is not None and filters.filters:
        tests.append(_compile(filters))
    if doc_ids:
        sources = set(doc_ids)
        tests.append(lambda meta: meta.get("ref_doc_id") in sources)
    return lambda meta: all(test(meta) for test in tests)


def _check_operators(filters: MetadataFilters) -> None:
    found = _operators(filters)
    unsupported = sorted(op.value for op in found if op not in SUPPORTED_OPERATORS)
    if unsupported:
        supported = [op.value for op in SUPPORTED_OPERATORS]
        raise ValueError(f"filters: operators {unsupported} are not supported by LSHRSVectorStore; use {supported}")


def _operators(filters: MetadataFilters) -> set[FilterOperator]:
    found: set[FilterOperator] = set()
    for item in filters.filters:
        found |= _operators(item) if isinstance(item, MetadataFilters) else {item.operator}
    return found


def _equalities(filters: MetadataFilters | None, doc_ids: Sequence[str] | None) -> dict[str, Any] | None:
    """The filters and doc_ids as one dict of key = scalar, or None when a dict cannot say it."""
    items = [] if filters is None else list(filters.filters)
    condition = None if filters is None else filters.condition
    all_of = condition in (None, FilterCondition.AND) or (condition == FilterCondition.OR and len(items) == 1)
    if not all_of or len(set(doc_ids or ())) > 1:
        return None
    pairs = []
    for item in items:
        if not isinstance(item, MetadataFilter) or item.operator != FilterOperator.EQ:
            return None
        if not isinstance(item.value, (str, int, float)):
            return None
        pairs.append((item.key, item.value))
    if doc_ids:
        pairs.append(("ref_doc_id", doc_ids[0]))
    equals = dict(pairs)
    return equals if len(equals) == len(pairs) else None  # a key twice: only a function can say it


def _compile(filters: MetadataFilters) -> Test:
    tests = [_compile(item) if isinstance(item, MetadataFilters) else _test(item) for item in filters.filters]
    if not tests:
        return lambda meta: True
    if filters.condition == FilterCondition.OR:
        return lambda meta: any(test(meta) for test in tests)
    if filters.condition == FilterCondition.NOT:
        return lambda meta: not any(test(meta) for test in tests)
    return lambda meta: all(test(meta) for test in tests)


def _test(item: MetadataFilter) -> Test:
    """One filter as a function of the metadata: a missing (or null) key passes only != and nin."""
    op, key, value = item.operator, item.key, item.value
    if op in (FilterOperator.IN, FilterOperator.NIN) and not isinstance(value, list):
        raise ValueError(f"filters: operator {op.value!r} on {key!r} expects a list value, got {value!r}")

    def test(meta: Mapping[str, Any]) -> bool:
        got = meta.get(key)
        if got is None:
            return op in (FilterOperator.NE, FilterOperator.NIN)
        return _holds(op, got, value)

    return test


def _holds(op: FilterOperator, got: Any, value: Any) -> bool:
    if op == FilterOperator.EQ:
        return bool(got == value)
    if op == FilterOperator.NE:
        return bool(got != value)
    if op == FilterOperator.IN:
        return got in value
    if op == FilterOperator.NIN:
        return got not in value
    return _comparable(got, value) and bool(_ORDER[op](got, value))


def _comparable(a: Any, b: Any) -> bool:
    """Numbers compare with numbers and strings with strings; anything else fails the filter."""

    def number(x: Any) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool)

    return (number(a) and number(b)) or (isinstance(a, str) and isinstance(b, str))
