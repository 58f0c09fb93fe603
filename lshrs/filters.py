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

from lshrs import ranking, where
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


# A filtered query on a code-ranked index reranks candidates that pass the filter:
# at least this share of its rerank depth (and top_k), so a filter passing 5 % of
# the corpus is ranked among about as many passing candidates as one passing 20 %
# is without walking: 40 of 200 at the defaults, where recall@10 was 0.948 against
# 0.884 at 5 % (benchmarks/results/filters-sqlite.md, before the walk).
PASSING_SHARE_OF_DEPTH = 0.2
# ... reading at most this many times the depth in candidates, beyond which the
# store's SQL (the pushdown) or the widened probe is the cheaper way to find them.
WALK_MAX_DEPTHS = 20


def passing_by_code(
    found: Pairs,
    vecs: NDArray[np.float32],
    top_k: int,
    depth: int,
    predicate: Predicate,
    stop_below: float = 0.0,
) -> Steps[tuple[Pairs, NDArray[np.float64]]]:
    """Each query's best `top_k` passing candidates, and the share of its candidates read that passed.

    `found` holds the candidates' code scores, grouped by query; they are
    walked in code order, filtered, and the passing ones reranked by exact
    cosine. Each step reads the next candidates' rows (vectors and
    metadata) in one store round trip, sized by the share that passed so
    far; the walk stops once enough passed. The share (NaN for a query
    without candidates) tells the caller how selective the filter is
    near this query: search.py probes wider, or asks the store's SQL, when
    it is small. A walk whose share falls below `stop_below` stops there:
    the caller will ask the SQL instead of reading on.
    """
    want = max(top_k, int(depth * PASSING_SHARE_OF_DEPTH))
    most = depth * WALK_MAX_DEPTHS
    kept: list[Pairs] = []
    shares = np.full(len(vecs), np.nan)
    for q, lo, hi in ranking.runs(found.query):
        order = found.ids[lo:hi][ranking.best_first(found.value[lo:hi], most)]
        passing, shares[q] = yield from _walk(order, want, depth, predicate, stop_below)
        if len(passing):
            one = Pairs(np.zeros(len(passing), np.int64), passing.ids, np.zeros(len(passing)))
            best = ranking.head(ranking.cosine_pairs(one, vecs[q : q + 1], passing), np.array([top_k]))
            kept.append(Pairs(best.query + q, best.ids, best.value))
    return (Pairs.concat(*kept) if kept else found.take(np.zeros(len(found), bool))), shares


def _walk(
    order: NDArray[np.int64], want: int, first: int, predicate: Predicate, stop_below: float
) -> Steps[tuple[Rows, float]]:
    """The rows among `order` (best first) that pass, read until `want` passed or `order` ran out; the share."""
    parts: list[Rows] = []
    read = passed = 0
    while read < len(order) and passed < want and (not read or passed / read >= stop_below):
        share = passed / read if read else 1.0  # the share passing so far sizes the next read
        step = first if not read else int(np.ceil((want - passed) / max(share, 1.0 / WALK_MAX_DEPTHS)))
        chunk = order[read : read + step]
        rows = yield call("store", "get", chunk, payload=True)
        parts.append(matching(rows, predicate))
        read, passed = read + len(chunk), passed + len(parts[-1])
    if not parts:
        return Rows(order[:0], np.empty((0, 0), np.float32)), float("nan")
    rows = Rows(np.concatenate([r.ids for r in parts]), np.concatenate([r.vectors for r in parts]))
    return rows, passed / read
