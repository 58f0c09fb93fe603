"""Candidate counting, top-p slicing and exact cosine rerank, for whole query batches.

Pure numpy over flat (query, id) pairs: each function sorts once instead of
looping over queries in Python. No I/O: the verbs hand it what they read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from lshrs.stores.base import Rows, find_sorted


@dataclass(frozen=True)
class Pairs:
    """Flat (query, id, value) triples grouped by query, best first within a query."""

    query: NDArray[np.int64]
    ids: NDArray[np.int64]
    value: NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, mask: NDArray[np.bool_]) -> Pairs:
        return Pairs(self.query[mask], self.ids[mask], self.value[mask])

    @staticmethod
    def concat(*parts: Pairs) -> Pairs:
        return Pairs(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("query", "ids", "value")))

    def per_query(self, n_queries: int) -> NDArray[np.int64]:
        return np.bincount(self.query, minlength=n_queries)


def expand_buckets(
    members: NDArray[np.int64], sizes: NDArray[np.int64], slot_key: NDArray[np.int64], slot_query: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Member ids of every probed bucket, tagged with the query that probed it.

    Args:
        members: ids of the unique fetched buckets, concatenated.
        sizes: member count of each unique bucket.
        slot_key: for each (query, table, probe) slot, its unique bucket index.
        slot_query: the query of each slot.

    Returns:
        The query and the id of every (query, member) pair, and the member's
        position in `members` (where its ranking code sits, for families that keep them).
    """
    starts = np.cumsum(sizes) - sizes
    lengths = sizes[slot_key]
    total = int(lengths.sum())
    offsets = np.repeat(starts[slot_key] - (np.cumsum(lengths) - lengths), lengths)
    positions = np.arange(total, dtype=np.int64) + offsets
    return np.repeat(slot_query, lengths), members[positions], positions


def count_collisions(queries: NDArray[np.int64], ids: NDArray[np.int64]) -> Pairs:
    """Collision count of each distinct (query, id), ranked by count, then id."""
    if len(ids) == 0:
        return Pairs(queries, ids, np.empty(0))
    low = int(ids.min())
    span = int(ids.max()) - low + 1
    n_queries = int(queries.max()) + 1
    if n_queries * span * 64 >= 2**62:  # ids too spread to pack with the query into one int64
        order = np.lexsort((ids, queries))
        q, i = queries[order], ids[order]
        starts = np.flatnonzero(np.r_[True, (q[1:] != q[:-1]) | (i[1:] != i[:-1])])
        counts = np.diff(np.r_[starts, len(q)])
        pairs = Pairs(q[starts], i[starts], counts.astype(np.float64))
        order = np.lexsort((pairs.ids, -pairs.value, pairs.query))
        return Pairs(pairs.query[order], pairs.ids[order], pairs.value[order])
    # One packed key per pair: a single sort counts, a second ranks (both far
    # cheaper than multi-key lexsorts over a batch's million pairs).
    keys, counts = np.unique(queries * span + (ids - low), return_counts=True)
    q, offset = np.divmod(keys, span)
    most = int(counts.max())
    order = np.argsort((q * (most + 1) + (most - counts)) * span + offset)
    return Pairs(q[order], offset[order] + low, counts[order].astype(np.float64))


def rank(pairs: Pairs) -> Pairs:
    """Sort by query, then value descending; ties keep their incoming order."""
    if len(pairs) and float(np.abs(pairs.value).max()) <= 1.5:  # scores: pack (query, -value) into one float
        order = np.argsort(pairs.query * 4.0 - pairs.value, kind="stable")
    else:
        order = np.lexsort((-pairs.value, pairs.query))
    return Pairs(pairs.query[order], pairs.ids[order], pairs.value[order])


def head(pairs: Pairs, limits: NDArray[np.int64]) -> Pairs:
    """The first `limits[q]` pairs of every query (pairs must be ranked)."""
    if len(pairs) == 0:
        return pairs
    if pairs.query[0] == pairs.query[-1]:  # one query (a ranked batch is sorted by query)
        k = max(int(limits[pairs.query[0]]), 0)
        return Pairs(pairs.query[:k], pairs.ids[:k], pairs.value[:k])
    starts = np.flatnonzero(np.r_[True, pairs.query[1:] != pairs.query[:-1]])
    group_start = np.repeat(starts, np.diff(np.r_[starts, len(pairs)]))
    within = np.arange(len(pairs)) - group_start
    return pairs.take(within < limits[pairs.query])


def best_per_query(pairs: Pairs, limits: NDArray[np.int64]) -> Pairs:
    """The best `limits[q]` pairs of every query, ranked; `pairs` grouped by query but not sorted.

    Each query partitions its own run of candidates and sorts only the few
    hundred it keeps: sorting a whole batch's pairs (two million for 200
    queries) cost 40 ms where the runs take a few.
    """
    if len(pairs) == 0:
        return pairs
    if pairs.query[0] == pairs.query[-1]:
        return _best_of_run(pairs, int(limits[pairs.query[0]]))
    kept = [
        _best_of_run(Pairs(pairs.query[lo:hi], pairs.ids[lo:hi], pairs.value[lo:hi]), int(limits[q]))
        for q, lo, hi in runs(pairs.query)
    ]
    return Pairs.concat(*kept)


def _best_of_run(pairs: Pairs, k: int) -> Pairs:
    keep = best_first(pairs.value, k)
    return Pairs(pairs.query[keep], pairs.ids[keep], pairs.value[keep])


def best_first(value: NDArray[Any], k: int) -> NDArray[np.int64]:
    """Positions of the k largest values (all of them when there are fewer), largest first, ties to the earlier.

    Partitioned before sorting, so only the k kept are sorted (a query has
    thousands of candidates and keeps a few hundred).
    """
    if k <= 0:
        return np.empty(0, np.int64)
    top = np.arange(len(value)) if len(value) <= k else top_positions(value, k)
    return top[np.argsort(-value[top], kind="stable")]


def top_positions(value: NDArray[Any], k: int) -> NDArray[np.int64]:
    """Positions of the k largest of more than k values, ascending; ties at the cut go to the earlier position.

    Deterministic where argpartition is not, so the numpy paths keep exactly
    the candidates the compiled scorer keeps (lshrs._compiled).
    """
    negated = -value
    cut = np.partition(negated, k - 1)[k - 1]
    better = np.flatnonzero(negated < cut)
    at_cut = np.flatnonzero(negated == cut)[: k - len(better)]
    return np.sort(np.concatenate([better, at_cut]))


def runs(query: NDArray[np.int64]) -> list[tuple[int, int, int]]:
    """(query, start, stop) of each run of equal values in `query`: the pairs of each query, when grouped."""
    values, bounds = run_bounds(query)
    return list(zip(values.tolist(), bounds[:-1].tolist(), bounds[1:].tolist()))


def run_bounds(query: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """`runs` as arrays: each run's value, shape (r,), and where each starts plus the end, shape (r + 1,)."""
    starts = np.flatnonzero(np.r_[True, query[1:] != query[:-1]]) if len(query) else np.empty(0, np.int64)
    return query[starts].astype(np.int64), np.r_[starts, len(query)].astype(np.int64)


def top_p_limits(pairs: Pairs, n_queries: int, top_k: int, top_p: float | None) -> NDArray[np.int64]:
    """How many candidates of each query to rerank: ceil(top_p * n), never fewer than top_k."""
    counts = pairs.per_query(n_queries)
    if top_p is None:
        return counts
    return np.maximum(np.ceil(counts * top_p - 1e-9).astype(np.int64), top_k)


# |v|^2 summed in float32 is trusted between these: normal numbers, far from overflow (NaN fails both tests)
_F32_SQUARES = (1e-30, 1e30)


def normalize(vectors: NDArray[np.float32]) -> NDArray[np.float32]:
    return (vectors.astype(np.float64) * inverse_norms(vectors)[:, None]).astype(np.float32)


def inverse_norms(vectors: NDArray[np.float32]) -> NDArray[np.float64]:
    """1 / |v| per row, 0 for a zero row (so it scores 0 instead of NaN).

    Summed in float32 when every |v|^2 comes out a normal float32 number
    (5x faster than float64: 24 us against 5 us for 100 x 384, a tenth of
    a reranked query's Python side), within float32 rounding of the float64
    sum. Otherwise in float64: in float32 |v|^2 overflows for coordinates
    above about 1.8e19 and underflows below about 1e-22, and such vectors scored 0.
    """
    fast = np.einsum("ij,ij->i", vectors, vectors) if vectors.dtype == np.float32 else None
    if fast is not None and len(fast) and _F32_SQUARES[0] <= fast.min() and fast.max() <= _F32_SQUARES[1]:
        return 1.0 / np.sqrt(fast.astype(np.float64))
    squared = np.einsum("ij,ij->i", vectors, vectors, dtype=np.float64)
    with np.errstate(divide="ignore"):
        inv = 1.0 / np.sqrt(squared)
    inv[squared == 0] = 0.0
    return inv


def matvec(matrix: NDArray[np.float32], vector: NDArray[np.float32]) -> NDArray[np.float32]:
    """`matrix @ vector` without BLAS.

    OpenBLAS spreads a product of a few thousand rows over its threads; on a
    2-core machine also running Redis and Postgres those threads wait on each
    other, and a 2,000 x 384 product took 16 ms where einsum takes 0.9 ms
    (single-threaded BLAS: 0.3-0.7 ms, but that is a process-wide setting).
    """
    return np.einsum("ij,j->i", matrix, vector)  # type: ignore[no-any-return]


def cosine_pairs(pairs: Pairs, queries: NDArray[np.float32], found: Rows) -> Pairs:
    """Exact cosine of every (query, candidate) pair whose vector was found, ranked.

    Candidates missing from the store (deleted rows, or rows indexed from
    arrays but never stored) are dropped here.
    """
    if len(found) == 0 or len(pairs) == 0:
        return Pairs(pairs.query[:0], pairs.ids[:0], np.empty(0))
    if np.array_equal(found.ids, pairs.ids):  # one query, every candidate found: rows already line up
        kept, rows = pairs, None
    else:
        order = np.argsort(found.ids)
        pos = find_sorted(found.ids[order], pairs.ids)
        kept, rows = pairs.take(pos >= 0), order[pos[pos >= 0]]
    qn = normalize(queries)
    inv = inverse_norms(found.vectors)
    if rows is None:
        return rank(Pairs(kept.query, kept.ids, (matvec(found.vectors, qn[0]) * inv).astype(np.float64)))
    # One gather and matrix-vector product per query: measured faster than
    # dense products over blocks of queries, which score every block row
    # against every query of the block.
    scores = np.empty(len(kept), np.float64)
    bounds = np.searchsorted(kept.query, np.arange(len(queries) + 1))
    for q, (lo, hi) in enumerate(zip(bounds[:-1].tolist(), bounds[1:].tolist())):
        if lo < hi:
            block = rows[lo:hi]
            scores[lo:hi] = matvec(found.vectors[block], qn[q]) * inv[block]
    return rank(Pairs(kept.query, kept.ids, scores))


def exact_top_k(
    queries: NDArray[np.float32], ids: NDArray[np.int64], vectors: NDArray[np.float32], top_k: int
) -> Pairs:
    """Brute-force cosine top-k of every query over all given rows."""
    if len(ids) == 0:
        return Pairs(np.empty(0, np.int64), ids, np.empty(0))
    unit = normalize(vectors)
    scores = matvec(unit, normalize(queries)[0])[None, :] if len(queries) == 1 else normalize(queries) @ unit.T
    k = min(top_k, len(ids))
    best = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    query = np.repeat(np.arange(len(queries), dtype=np.int64), k)
    flat = best.reshape(-1)
    return rank(Pairs(query, ids[flat], scores[query, flat].astype(np.float64)))
