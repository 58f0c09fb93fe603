"""A query, as steps: probe buckets -> rank candidates -> exact cosine rerank -> hits.

Written once as generators of `steps.Step` (see steps.py), so `LSHRS.query`
and `LSHRS.aquery` share every line of it. Step targets: ``buckets``
(Redis), ``store`` (vectors and payloads), ``pages`` (exact scans),
``model`` (embedding) and ``index`` (the `Attachment`: attach, sketches).
It only reads: writes belong to writes.py and build.py.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from lshrs import filters, inputs, ranking, steps
from lshrs.attachment import Attachment
from lshrs.sketch import SketchCache
from lshrs.steps import Steps, call
from lshrs.stores.base import Metadata, capabilities
from lshrs.where import Where, parse

log = logging.getLogger("lshrs")

# A query short of top_k candidates retries once with this many times the probes;
# if still short and the index is no larger than this, it scans the store.
WIDEN_FACTOR = 8
EXACT_FALLBACK_MAX = 200_000
# A query whose dict filter passed fewer than top_k candidates asks the store's SQL
# for the filter's matches; up to this many, it is answered exactly among them
# (one read of their vectors) instead of probing wider and scanning the store.
# benchmarks/results/filters-sqlite.md: exact, and 5-6 times faster at 56 to 1,200 matches.
PUSHDOWN_MAX = 10_000
# A filtered query whose walked candidates passed less than this share probes
# wider, by up to WIDEN_FACTOR: filtered neighbours lie farther out than the
# default probes reach. Below FILTER_SHARE_OK / WIDEN_FACTOR it asks the store's
# SQL first (the pushdown), as a short query does. At a 20 % share the default
# probes kept recall@10 at 0.95 (benchmarks/results/filters-sqlite.md); at 5 %
# they found their 10 but recall was 0.88, and reading deeper among the same
# candidates did not change it. 0 turns this off.
FILTER_SHARE_OK = 0.2


@dataclass(frozen=True)
class Hit:
    """One search result.

    `score` is the exact cosine similarity when the query reranks; with
    ``rerank=False`` it is the fraction of tables in which the id collided
    with the query, and `text` and `metadata` are None.
    """

    id: int
    score: float
    text: str | None = None
    metadata: Metadata | None = None


@dataclass(frozen=True)
class Request:
    """A validated query batch (texts still to embed, or vectors)."""

    texts: list[str] | None
    vectors: NDArray[np.float32] | None
    top_k: int
    top_p: float | None
    rerank: bool
    probes: int
    predicate: filters.Predicate | None
    exact_below: int  # scan the store exactly while the index holds fewer vectors
    batch_size: int  # rows per page of an exact scan
    rerank_depth: int  # candidates a code-ranked query reranks when top_p is None
    where: Where | None = None  # the filter, when it is a dict the store may answer in SQL (see _pushed_down)
    payload: bool = True  # read the hits' texts and metadata (a second store read)


def request(
    queries: Any,
    *,
    dim: int | None,
    top_k: int,
    top_p: float | None,
    rerank: bool,
    probes: int,
    filter: Any,
    exact_below: int,
    batch_size: int,
    rerank_depth: int,
    payload: bool = True,
) -> Request:
    """Check a query batch whole before any I/O: texts to embed, or an (n, d) array."""
    inputs.check_top(top_k, top_p)
    expr = parse(filter) if isinstance(filter, Mapping) else None  # parsed once: the predicate and the pushdown
    predicate = None if filter is None else filters.as_predicate(filter if expr is None else expr)
    if predicate is not None and not rerank:
        raise ValueError("filter: metadata is in the store, so a filtered query needs rerank=True")
    probes = inputs.positive("num_probes", probes)
    if isinstance(queries, str):
        raise TypeError("queries: expected a list of texts or an (n, d) array; use query() for one")
    texts, vectors = None, None
    if isinstance(queries, Sequence) and len(queries) > 0 and all(isinstance(q, str) for q in queries):
        texts = inputs.as_texts(queries, name="queries")
    else:
        vectors = inputs.as_vectors(queries, dim=dim, name="queries")
    depth = inputs.positive("rerank_depth", rerank_depth)
    if not isinstance(payload, bool):
        raise TypeError(f"payload: expected True or False, got {payload!r:.40}")
    return Request(
        texts, vectors, top_k, top_p, rerank, probes, predicate, exact_below, batch_size, depth, expr, payload
    )


def one_query(query: Any, dim: int | None) -> Any:
    """One text or one vector, as a batch of one."""
    queries = [query] if isinstance(query, str) else inputs.as_vectors(query, dim=dim, name="query")
    if len(queries) != 1:
        raise ValueError(f"query: expected one vector, got {len(queries)}; use query_many")
    return queries


def query_steps(index: Attachment, req: Request) -> Steps[list[list[Hit]]]:
    vecs = req.vectors if req.texts is None else (yield call("model", "embed", req.texts))
    assert vecs is not None
    if index.family is None and not (yield call("index", "attach")):
        return [[] for _ in range(len(vecs))]
    pairs, count, shares = yield from _search(index, vecs, req, req.probes)
    short = _short(pairs, len(vecs), req.top_k, count)
    thin = np.flatnonzero(shares < FILTER_SHARE_OK) if shares is not None else short[:0]
    rare = thin[shares[thin] < FILTER_SHARE_OK / WIDEN_FACTOR] if shares is not None else thin
    asked = np.union1d(short, rare)
    if len(asked) and _can_push_down(index, req):
        pairs, unanswered = yield from _pushed_down(vecs, pairs, asked, req)
        answered = np.setdiff1d(asked, unanswered)
        short, thin, rare = (np.setdiff1d(x, answered) for x in (short, thin, rare))
    if len(thin):  # filtered neighbours lie farther out: probe wider, the thinner the share the wider
        assert shares is not None
        factor = min(WIDEN_FACTOR, int(np.ceil(FILTER_SHARE_OK / max(float(np.min(shares[thin])), 1e-9))))
        again, _, _ = yield from _search(index, vecs[thin], req, req.probes * factor)
        pairs = _splice(pairs, thin, again)
        short = _short(pairs, len(vecs), req.top_k, count)
    if len(short):
        again, _, _ = yield from _search(index, vecs[short], req, req.probes * WIDEN_FACTOR)
        pairs = _splice(pairs, short, again)
        short = _short(pairs, len(vecs), req.top_k, count)
    # A rare filter the SQL did not answer is scanned exactly, like a short query: wider probes
    # find its top_k passing, but not the best of them (recall@10 0.58 at a 1 % share).
    scan = np.union1d(short, rare)
    # The bucket count is small during a first index() of a large table: ask the store before scanning it.
    if len(scan) and req.rerank and count <= EXACT_FALLBACK_MAX and (yield from _store_at_most(EXACT_FALLBACK_MAX)):
        exact = yield from _exact(vecs[scan], req)
        pairs = _splice(pairs, scan, exact)
    elif len(short):
        log.warning("%d queries found fewer than top_k=%d candidates", len(short), req.top_k)
    return (yield from _hits(pairs, len(vecs), payload=req.rerank and req.payload))


def _can_push_down(index: Attachment, req: Request) -> bool:
    """Whether the store's SQL can answer this query's filter (a dict filter, a store with find_where)."""
    return bool(PUSHDOWN_MAX and req.where is not None and capabilities(index.store).find_where)


def _short(pairs: ranking.Pairs, n_queries: int, top_k: int, count: int) -> NDArray[np.int64]:
    """The queries with fewer than top_k results (fewer than the index holds)."""
    return np.flatnonzero(pairs.per_query(n_queries) < min(top_k, count))


def _search(
    index: Attachment, vecs: NDArray[np.float32], req: Request, probes: int
) -> Steps[tuple[ranking.Pairs, int, NDArray[np.float64] | None]]:
    """Ranked results of every query, the index size read along with the buckets, and filtered shares.

    The shares, for a filtered query on a code-ranked index, are each
    query's share of walked candidates that passed (see FILTER_SHARE_OK);
    None on every other path.

    Below `exact_below` indexed vectors the bucket read is dropped for an
    exact scan: the size only arrives with the buckets, which saves a
    round trip on every query of a large index.
    """
    family = index.family
    assert family is not None
    if not family.trained:  # a centroid index too small to train has no buckets: the store is the index
        return (yield from _exact(vecs, req)), 0, None  # rerank=False too: there is nothing else to rank by
    depth = _code_depth(family, req)
    found, count, generation = yield from candidates(index, vecs, probes, depth)
    if req.rerank and count < req.exact_below and (yield from _store_at_most(req.exact_below - 1)):
        return (yield from _exact(vecs, req)), count, None
    top = np.full(len(vecs), req.top_k)
    if not req.rerank and family.code_bytes:
        return found, count, None  # the codes' best top_k (see _code_depth)
    if not req.rerank:
        pairs = ranking.Pairs(found.query, found.ids, found.value / family.num_tables)
        return ranking.head(pairs, top), count, None
    # how many candidates each query reranks with top_p; without it, the depth (codes) or all of them
    limits = None if req.top_p is None else ranking.top_p_limits(found, len(vecs), req.top_k, req.top_p)
    if family.code_bytes and req.predicate is not None and req.top_p is None:
        depth_one = max(req.top_k, req.rerank_depth)
        stop_below = FILTER_SHARE_OK / WIDEN_FACTOR if _can_push_down(index, req) else 0.0  # the SQL answers sooner
        walk = filters.passing_by_code(found, vecs, req.top_k, depth_one, req.predicate, stop_below)
        passing, shares = yield from walk
        return passing, count, shares
    if limits is None:  # every candidate, or (codes) the best few hundred, chosen as they were scored
        chosen = found
    elif family.code_bytes:  # the codes score them: rerank the top_p share
        chosen = ranking.best_per_query(found, limits)
    elif index.sketches is None:
        chosen = ranking.head(found, limits)
    else:
        chosen = _by_sketch(index.sketches, found, vecs, limits, generation)
    wanted = chosen.ids if len(vecs) == 1 else np.unique(chosen.ids)
    rows = yield call("store", "get", wanted, payload=False)
    if index.sketches is not None and req.top_p is not None and not family.code_bytes:
        yield call("index", "learn_sketches", rows)
    scored = ranking.cosine_pairs(chosen, vecs, rows)
    if req.predicate is not None:
        return (yield from filters.first_passing(scored, len(vecs), req.top_k, req.predicate)), count, None
    return ranking.head(scored, np.full(len(vecs), req.top_k)), count, None


def _by_sketch(
    cache: SketchCache,
    found: ranking.Pairs,
    vecs: NDArray[np.float32],
    limits: NDArray[np.int64],
    generation: bytes,
) -> ranking.Pairs:
    """What a top_p query reranks: the best `limits[q]` candidates by sketch, plus as many unknown ones by count.

    Candidates whose sketch this process has not seen yet keep their
    collision-count order and a quota of their own, so a cold cache costs
    at most twice the reranking of a warm one and learns as it goes.
    """
    cache.sync(generation)
    known, sketches = cache.lookup(found.ids)
    if not known.any():
        return ranking.head(found, limits)
    similarity = cache.similarity(cache.sketch(vecs)[found.query[known]], sketches)
    by_sketch = ranking.rank(ranking.Pairs(found.query[known], found.ids[known], similarity))
    chosen = ranking.Pairs.concat(ranking.head(by_sketch, limits), ranking.head(found.take(~known), limits))
    order = np.argsort(chosen.query, kind="stable")  # cosine_pairs wants each query's pairs together
    return ranking.Pairs(chosen.query[order], chosen.ids[order], chosen.value[order])


def _code_depth(family: Any, req: Request) -> int | None:
    """How many candidates per query the ranking codes keep as they score them, or None for all of them.

    A code-ranked query reranks its best `rerank_depth` (rerank=False: returns
    its best top_k); with top_p the share depends on each query's count, and a
    filter walks further down the code order, so those keep every candidate.
    """
    if not family.code_bytes or req.top_p is not None or (req.rerank and req.predicate is not None):
        return None
    return max(req.top_k, req.rerank_depth) if req.rerank else req.top_k


def candidates(
    index: Attachment, vecs: NDArray[np.float32], probes: int, depth: int | None = None
) -> Steps[tuple[ranking.Pairs, int, bytes]]:
    """Ids in the probed buckets per query, the index size and its generation.

    Ranked by collision count; or, for a family that keeps ranking codes in
    its bucket entries, scored by the code against the query and left
    unsorted (grouped by query): `ranking.best_per_query` keeps the best.
    With `depth` (codes only) each query keeps only its best `depth`, ranked.
    """
    hasher = index.family
    assert hasher is not None
    codes = hasher.probes(vecs, probes)  # (n, tables, probes)
    tables = np.broadcast_to(np.arange(codes.shape[1])[:, None], codes.shape[1:])
    slot_bucket = (tables[None] << hasher.num_bits | codes).reshape(-1)
    unique_buckets, slot_key = np.unique(slot_bucket, return_inverse=True)
    mask = (1 << hasher.num_bits) - 1
    fetched = yield call("buckets", "fetch", unique_buckets >> hasher.num_bits, unique_buckets & mask)
    members, sizes, entries, generation, marks = fetched
    at = None
    if len(vecs) == 1 and len(unique_buckets) == len(slot_bucket):
        # One query probing distinct buckets: every member is its candidate once, in any order.
        queries, ids = np.zeros(len(members), np.int64), members
    else:
        slot_query = np.repeat(np.arange(len(vecs), dtype=np.int64), codes.shape[1] * codes.shape[2])
        queries, ids, at = ranking.expand_buckets(members, sizes, slot_key.reshape(-1), slot_query)
    size = entries // hasher.num_tables
    if marks is None:
        return ranking.count_collisions(queries, ids), size, generation
    # One entry per vector (one table, distinct probed buckets): no counting, the codes rank.
    if depth is not None:
        kept, best = hasher.best_by_code(vecs, queries, marks, at, depth)
        return ranking.Pairs(queries[kept], ids[kept], best.astype(np.float64)), size, generation
    scores = hasher.code_scores(vecs, queries, marks, at).astype(np.float64)
    return ranking.Pairs(queries, ids, scores), size, generation


def probe(index: Attachment, vecs: NDArray[np.float32], probes: int) -> ranking.Pairs:
    """`candidates` with the blocking client: every query's distinct candidate ids and collision counts."""
    found, _, _ = steps.run(candidates(index, vecs, probes), {"buckets": index.buckets})
    return found


def _store_at_most(rows: int) -> Steps[bool]:
    """Whether the store holds at most `rows` rows: an exact scan is only for a store that small.

    Asked only when the buckets hold few vectors, so it costs a round trip
    only on small indexes, or while a large table's first build is running
    (when scanning it whole for every query would take minutes).
    """
    return int((yield call("store", "count"))) <= rows


def _exact(vecs: NDArray[np.float32], req: Request) -> Steps[ranking.Pairs]:
    """Brute-force cosine over every stored row (small indexes), or every row that passes the filter."""
    top_k, predicate = req.top_k, req.predicate
    best = ranking.Pairs(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0))
    after = None
    while (rows := (yield call("pages", "page", after, req.batch_size, predicate is not None))) is not None:
        after = int(rows.ids[-1])
        if predicate is not None:
            rows = filters.matching(rows, predicate)
        part = ranking.exact_top_k(vecs, rows.ids, rows.vectors, top_k)
        best = ranking.head(ranking.rank(ranking.Pairs.concat(best, part)), np.full(len(vecs), top_k))
    return best


def _pushed_down(
    vecs: NDArray[np.float32], pairs: ranking.Pairs, short: NDArray[np.int64], req: Request
) -> Steps[tuple[ranking.Pairs, NDArray[np.int64]]]:
    """Queries whose filter passed too few candidates, searched exactly among the filter's matches.

    Asked only when a query came up short, or its walked candidates passed
    a small share (FILTER_SHARE_OK), so a broad filter never pays for the
    SQL; a selective one then costs one SQL query (LIMIT PUSHDOWN_MAX + 1)
    and one read of its matches' vectors, instead of probing wider and then
    scanning the store with payloads (benchmarks/results/filters-sqlite.md).
    The queries still short are left to that path when the filter matches more.
    """
    assert req.where is not None
    matched = yield call("store", "find_where", req.where, limit=PUSHDOWN_MAX + 1)
    if matched is None or len(matched) > PUSHDOWN_MAX:
        return pairs, short
    rows = yield call("store", "get", np.unique(np.asarray(matched, np.int64)), payload=False)
    exact = ranking.exact_top_k(vecs[short], rows.ids, rows.vectors, req.top_k)
    return _splice(pairs, short, exact), np.empty(0, np.int64)


def _hits(pairs: ranking.Pairs, n_queries: int, *, payload: bool) -> Steps[list[list[Hit]]]:
    results: list[list[Hit]] = [[] for _ in range(n_queries)]
    texts: dict[int, str | None] = {}
    metas: dict[int, Metadata | None] = {}
    if payload and len(pairs):
        rows = yield call("store", "get", np.unique(pairs.ids), payload=True)
        texts = dict(zip(rows.ids.tolist(), rows.texts or []))
        metas = dict(zip(rows.ids.tolist(), rows.metadata or []))
    for q, i, s in zip(pairs.query.tolist(), pairs.ids.tolist(), pairs.value.tolist()):
        results[q].append(Hit(i, s, texts.get(i), metas.get(i)))
    return results


def _splice(pairs: ranking.Pairs, queries: NDArray[np.int64], redone: ranking.Pairs) -> ranking.Pairs:
    """Replace the results of `queries` (numbered 0.. in `redone`) inside `pairs`."""
    keep = pairs.take(~np.isin(pairs.query, queries))
    moved = ranking.Pairs(queries[redone.query], redone.ids, redone.value)
    return ranking.rank(ranking.Pairs.concat(keep, moved))
