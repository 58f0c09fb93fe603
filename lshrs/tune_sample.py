"""The tuner's sample: held-out queries, the rows around them, and their true neighbours.

Why it is drawn this way:

- The sample is the user's own data (their vectors, or a uniform random
  sample of the store read in one scan), because recall depends on how
  their neighbours are spread, which no synthetic set reproduces.
- `num_queries` rows are held out as queries (never indexed). When the
  store holds more rows than the sample, a second scan finds each query's
  exact cosine top-k in the whole store and those rows join the scratch
  indexes: a query's neighbours among a million rows are much closer than
  among a 20,000-row sample, so they collide far more often, and recall
  measured within the sample alone would send the pick to settings that
  rerank about twice the candidates needed (measured on 36,864 MiniLM
  WordNet glosses, sample 5,000). Given vectors are their own truth, which
  errs the same, safe, way if they stand for a larger index.

Reads the user's store only; never writes anything.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from lshrs import inputs, ranking
from lshrs.sampling import Source, reservoir, scan
from lshrs.stores.base import Rows, find_sorted
from lshrs.stores.pages import Pages

# Rows of the user's store read to price one candidate (see rerank_cost).
COST_SAMPLE = 1_000


@dataclass(frozen=True)
class Sample:
    """Held-out queries, the rows a scratch index holds, and each query's true top-k (positions in `corpus`).

    `corpus` is the uniform sample, plus, when the store is larger than the
    sample, each query's true neighbours in the whole store (`in_sample`
    False): recall is then measured against the neighbours the full index
    holds, while candidates are counted on the uniform part only, whose
    share of the sample is the share of the index a query reranks.
    """

    queries: NDArray[np.float32]
    corpus: NDArray[np.float32]
    truth: NDArray[np.int64]  # (queries, top_k); -1 for a neighbour deleted from the store meanwhile
    in_sample: NDArray[np.bool_]
    cost_ids: NDArray[np.int64]  # ids of stored rows to price a candidate read with (may be empty)
    truth_over: int  # rows the exact top-k was taken over

    @property
    def sampled(self) -> int:
        return int(self.in_sample.sum())


def draw(
    source: Source, vectors: Any, size: int, num_queries: int, top_k: int, rng: np.random.Generator
) -> tuple[Sample, int]:
    """The sample and the size of the index it stands for.

    From the store: one scan draws the sample; when the store holds more
    rows than that, a second scan finds each held-out query's true
    neighbours among all of them (see `Sample`). Given vectors: the truth
    is taken within them, which is conservative if they stand for more.
    """
    if vectors is not None:
        given = inputs.as_vectors(vectors, dim=source.dim)
        picked = given[rng.permutation(len(given))[:size]]
        _check_size(len(picked), num_queries, top_k)
        asked, corpus = picked[:num_queries], picked[num_queries:]
        truth = exact_top_k(asked, corpus, top_k)
        sample = Sample(asked, corpus, truth, np.ones(len(corpus), bool), _stored_ids(source), len(corpus))
        return sample, max(source.store.count(), len(corpus))
    rows, seen = reservoir(source, size, rng)
    _check_size(len(rows), num_queries, top_k)
    queries = Rows(rows.ids[:num_queries], rows.vectors[:num_queries])
    rest = Rows(rows.ids[num_queries:], rows.vectors[num_queries:])
    if seen == len(rows):  # the sample is the whole store: its truth is the index's
        truth = exact_top_k(queries.vectors, rest.vectors, top_k)
        everything = np.ones(len(rest), bool)
        return Sample(queries.vectors, rest.vectors, truth, everything, rest.ids[:COST_SAMPLE], len(rest)), seen
    return planted(source, queries, rest, store_top_k(source, queries, top_k), seen), seen


def _check_size(n: int, num_queries: int, top_k: int) -> None:
    if n < num_queries + top_k:
        raise ValueError(
            f"sample: {n} vectors, too few for num_queries={num_queries} held out plus top_k={top_k}; "
            "lower num_queries or give more vectors"
        )


def store_top_k(source: Source, queries: Rows, k: int) -> NDArray[np.int64]:
    """Ids of each query's k nearest stored rows by cosine (itself left out), from one scan of the store."""
    n = len(queries)
    best = ranking.Pairs(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0))
    for rows in scan(source, "exact neighbours"):
        found = ranking.exact_top_k(queries.vectors, rows.ids, rows.vectors, k + 1)
        found = found.take(found.ids != queries.ids[found.query])
        best = ranking.head(ranking.rank(ranking.Pairs.concat(best, found)), np.full(n, k))
    return best.ids.reshape(n, -1)


def planted(source: Source, queries: Rows, rest: Rows, truth_ids: NDArray[np.int64], truth_over: int) -> Sample:
    """The sample plus the queries' true neighbours it lacks, read from the store by id."""
    extra = source.store.get(np.setdiff1d(truth_ids, rest.ids), payload=False)
    ids = np.concatenate([rest.ids, extra.ids])
    order = np.argsort(ids)
    pos = find_sorted(ids[order], truth_ids.ravel())
    truth = np.where(pos >= 0, order[np.maximum(pos, 0)], -1).reshape(truth_ids.shape)
    in_sample = np.r_[np.ones(len(rest), bool), np.zeros(len(extra), bool)]
    corpus = np.concatenate([rest.vectors, extra.vectors])
    return Sample(queries.vectors, corpus, truth, in_sample, rest.ids[:COST_SAMPLE], truth_over)


def _stored_ids(source: Source) -> NDArray[np.int64]:
    """Ids of the store's first rows (to price a candidate read), none for an empty store."""
    page = Pages(source.store).page(None, COST_SAMPLE, payload=False)
    return np.empty(0, np.int64) if page is None else page.ids


def exact_top_k(queries: NDArray[np.float32], corpus: NDArray[np.float32], k: int) -> NDArray[np.int64]:
    """Positions in `corpus` of each query's k nearest by cosine, best first."""
    found = ranking.exact_top_k(queries, np.arange(len(corpus), dtype=np.int64), corpus, k)
    return found.ids.reshape(len(queries), -1)


def rerank_cost(source: Source, ids: NDArray[np.int64]) -> float:
    """Milliseconds per candidate to read from the user's store (payload-free, as a query does); best of three.

    This is the part of a query that grows with the index, so it prices the
    candidates a full-size index adds to what the sample measured.
    """
    if len(ids) == 0:
        return 0.0
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        source.store.get(ids, payload=False)
        best = min(best, time.perf_counter() - start)
    return 1e3 * best / len(ids)


def round_robin_ms(queries: NDArray[np.float32], runs: Sequence[Callable[[NDArray[np.float32]], Any]]) -> list[float]:
    """Median wall time in ms of each run on single queries, timed round-robin after one warm-up round.

    Round r times query r on every run in turn, so slow and fast periods of
    a shared machine fall on all settings alike instead of deciding the pick.
    """
    times = np.zeros((len(queries) + 1, len(runs)))
    for r, query in enumerate(np.concatenate([queries[:1], queries])):
        for i, run in enumerate(runs):
            start = time.perf_counter()
            run(query)
            times[r, i] = time.perf_counter() - start
    return (np.median(times[1:], axis=0) * 1e3).tolist()
