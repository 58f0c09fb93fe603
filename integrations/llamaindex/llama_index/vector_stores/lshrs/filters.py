"""LlamaIndex `MetadataFilters` (plus `doc_ids`) in lshrs's filter language (`lshrs.where`).

Every `FilterOperator` and `FilterCondition` has a translation, so the same
filter means the same thing in `query`, `get_nodes`, `delete_nodes` and
`LSHRS.find` (where the SQL stores run it in SQL). Values compare as JSON
does: unlike llama-index-core's in-memory store, a bool does not equal 1.

| LlamaIndex | lshrs |
| --- | --- |
| EQ NE GT GTE LT LTE IN NIN | $eq $ne $gt $gte $lt $lte $in $nin |
| CONTAINS, TEXT_MATCH | $contains (a list holding the value, or a string holding it) |
| TEXT_MATCH_INSENSITIVE | $icontains |
| ANY / ALL | $or / $and of $contains, one per value |
| IS_EMPTY | missing, null, "" or an empty list |
| AND / OR / NOT | $and / $or / $not of the $or (none of them holds, as core's NOT) |
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llama_index.core.vector_stores.types import FilterCondition, FilterOperator, MetadataFilter, MetadataFilters

from lshrs import where

Filter = dict[str, Any]

_SAME = {
    FilterOperator.EQ: "$eq",
    FilterOperator.NE: "$ne",
    FilterOperator.GT: "$gt",
    FilterOperator.GTE: "$gte",
    FilterOperator.LT: "$lt",
    FilterOperator.LTE: "$lte",
    FilterOperator.IN: "$in",
    FilterOperator.NIN: "$nin",
    FilterOperator.CONTAINS: "$contains",
    FilterOperator.TEXT_MATCH: "$contains",
    FilterOperator.TEXT_MATCH_INSENSITIVE: "$icontains",
}


def to_filter(filters: MetadataFilters | None, doc_ids: Sequence[str] | None) -> Filter | None:
    """The lshrs filter of LlamaIndex filters plus a `doc_ids` restriction; None when nothing is restricted.

    Checked whole (lshrs.where.parse) before any I/O: a value of the wrong
    type raises ValueError or TypeError naming the key.
    """
    parts = []
    if filters is not None and filters.filters:
        parts.append(_filters(filters))
    if doc_ids:
        parts.append({"ref_doc_id": {"$in": list(dict.fromkeys(doc_ids))}})
    if not parts:
        return None
    wanted = parts[0] if len(parts) == 1 else {"$and": parts}
    where.parse(wanted)
    return wanted


def _filters(filters: MetadataFilters) -> Filter:
    parts = [_filters(f) if isinstance(f, MetadataFilters) else _one(f) for f in filters.filters]
    if not parts:
        return {}
    condition = filters.condition or FilterCondition.AND
    if condition == FilterCondition.OR:
        return {"$or": parts}
    if condition == FilterCondition.NOT:
        return {"$not": {"$or": parts}}  # llama-index-core: true when none of the filters holds
    return parts[0] if len(parts) == 1 else {"$and": parts}


def _one(item: MetadataFilter) -> Filter:
    op, key, value = item.operator, item.key, item.value
    if op in _SAME:
        if op in (FilterOperator.IN, FilterOperator.NIN) and not isinstance(value, list):
            raise ValueError(f"filters: operator {op.value!r} on {key!r} expects a list value, got {value!r}")
        return {key: {_SAME[op]: value}}
    if op in (FilterOperator.ANY, FilterOperator.ALL):
        if not isinstance(value, list):
            raise ValueError(f"filters: operator {op.value!r} on {key!r} expects a list value, got {value!r}")
        if not value:  # any of nothing never holds; all of nothing always does
            return {key: {"$in" if op == FilterOperator.ANY else "$nin": []}}
        return {"$or" if op == FilterOperator.ANY else "$and": [{key: {"$contains": v}} for v in value]}
    if op == FilterOperator.IS_EMPTY:
        return {"$or": [{key: {"$exists": False}}, {key: None}, {key: ""}, {key: {"$size": 0}}]}
    raise ValueError(f"filters: operator {op.value!r} is not supported by LSHRSVectorStore")
