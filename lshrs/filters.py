"""Metadata filters: which documents a query or a lookup may return.

A filter is a dict in the filter language of `lshrs.where` (Mongo-style
operators with JSON's semantics) or any callable ``metadata -> bool``.
Metadata lives in the store, not in Redis, so a filtered query scores its
candidates by exact cosine first, then reads their payloads in rank order
and stops as soon as `top_k` pass: a loose filter costs one extra store
read, a tight one reads further down the ranking. `find` asks the store's
SQL where it has some (stores/sql_where.py), else scans in Python.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from lshrs import where
from lshrs.ranking import Pairs
from lshrs.steps import Steps, call
from lshrs.stores.base import Metadata, Rows, capabilities

Filter = Mapping[str, Any] | Callable[[Metadata], bool]
Predicate = Callable[[Metadata | None], bool]
WHERE_TYPES = (where.Test, where.AllOf, where.AnyOf, where.Not)  # a filter dict already parsed

# Payload rows read per store round trip while walking a ranking.
_WALK_CHUNK = 256


def as_predicate(filter: Filter | where.Where) -> Predicate:
    """A function of one document's metadata (None counts as empty); a dict is checked whole here."""
    if isinstance(filter, (Mapping, *WHERE_TYPES)):
        expr = where.parse(filter) if isinstance(filter, Mapping) else filter
        return lambda meta: where.matches(expr, meta)
    if callable(filter):
        return lambda meta: bool(filter(meta if meta is not None else {}))
    raise TypeError(f"filter: expected a dict or a callable, got {type(filter).__name__}")


def matching(rows: Rows, predicate: Predicate) -> Rows:
    """The rows whose metadata passes."""
    metas = rows.metadata if rows.metadata is not None else [None] * len(rows)
    keep = np.fromiter((predicate(m) for m in metas), bool, count=len(rows))
    return Rows(
        rows.ids[keep],
        rows.vectors[keep],
        None if rows.texts is None else [t for t, k in zip(rows.texts, keep) if k],
        None if rows.metadata is None else [m for m, k in zip(rows.metadata, keep) if k],
    )


def first_passing(ranked: Pairs, n_queries: int, top_k: int, predicate: Predicate) -> Steps[Pairs]:
    """The best `top_k` pairs of each query whose document passes, reading payloads in rank order."""
    verdict: dict[int, bool] = {}
    kept = np.zeros(len(ranked), bool)
    bounds = np.searchsorted(ranked.query, np.arange(n_queries + 1))
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        found = 0
        for start in range(lo, hi, _WALK_CHUNK):
            chunk = ranked.ids[start : min(start + _WALK_CHUNK, hi)].tolist()
            unknown = [i for i in chunk if i not in verdict]
            if unknown:
                rows = yield call("store", "get", np.array(unknown, np.int64), payload=True)
                verdict.update(zip(rows.ids.tolist(), map(predicate, rows.metadata or [None] * len(rows))))
            for offset, doc in enumerate(chunk):
                if found < top_k and verdict.get(doc, False):
                    kept[start + offset] = True
                    found += 1
            if found >= top_k:
                break
    return ranked.take(kept)


def find_steps(store: Any, filter: Filter, batch_size: int) -> Steps[NDArray[np.int64]]:
    """Ids of every stored document whose metadata passes, ascending: SQL where the store can, else one scan."""
    expr = where.parse(filter) if isinstance(filter, Mapping) else None
    predicate = as_predicate(filter if expr is None else expr)
    if expr is not None and capabilities(store).find_where:
        found = yield call("store", "find_where", expr)
        if found is not None:  # None: the store's SQL cannot express this filter exactly
            return np.sort(np.asarray(found, np.int64))
    found_ids = [np.empty(0, np.int64)]
    after = None
    while (rows := (yield call("pages", "page", after, batch_size))) is not None:
        after = int(rows.ids[-1])
        found_ids.append(matching(rows, predicate).ids)
    return np.concatenate(found_ids)
