"""Centroid buckets: the data-drawn hash family, and the ranking codes stored in its bucket entries.

This module owns the numpy core of an inverted file. `train` draws spherical
k-means centroids from a sample of the store; `Centroids` puts each vector in
its nearest centroid's bucket and gives a query its `num_probes` nearest
centroids; `rank_codes` makes the sign code stored next to each id, and
`asymmetric_scores` / `hamming_pairs` rank the candidates of one bucket read so
that only the best few hundred are fetched and reranked exactly. Random
hyperplanes cut across the data's clusters, so a query's neighbours scatter
over many buckets; centroids cut along them, so a few buckets hold most of them.

Decisions, measured by benchmarks/centroids.py (numbers in its docstring) on
4,441 all-MiniLM-L6-v2 passages of gensim's Wikipedia slice (nlist 128;
recall@10 after keeping the best `depth` candidates by code and reranking
them exactly) and on synthetic clusters:

- Init: random distinct rows. k-means++ reached the same mean cosine
  (0.718-0.720 both) and recall within seed noise, and its k sequential
  passes over the sample are what a 4,096-centroid build cannot afford.
- Ranking: the asymmetric score (query floats x candidate signs). Neighbours
  from other articles, nprobe 16, depth 25/50: 0.863/0.920 against Hamming's
  0.749/0.853; Hamming needs about twice the depth. It costs 1.7 ms per
  20,000 candidates (Hamming 0.6 ms), one thread.
- No rotation: within +-0.01 of the unrotated code at 384 bits on every set,
  and it would put dim*dim floats in the definition. It does gain 0.01-0.03
  with codes cut to 96-192 bits; revisit if codes are ever shortened.
- No spill (num_tables = 1): a SOAR second bucket gained 0.005-0.011 recall
  at equal entries read on two of three real query sets and lost 0.003 on
  the third, for twice the Redis bytes per vector (104 B with 4-byte ids and
  48-byte codes: over the 108 B budget once centroids count).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from lshrs import inputs, kernels
from lshrs.codes import (
    PREFILTER,
    asymmetric_scores,
    centre,
    code_tables,
    code_words,
    hamming_one,
    padded_codes,
    prefilter,
    rank_codes,
)
from lshrs.definition import DEFAULT_NUM_PROBES
from lshrs.ranking import Pairs, best_per_query, run_bounds, runs

# Fewest training rows per centroid a build should use. In benchmarks/centroids.py,
# going from 16 to 32 rows changed the share of true neighbours in 4 probed lists by
# +0.00 to +0.03 on real passages, 32 to 66 by -0.01 to +0.02 more. 32 keeps a 4,096-centroid
# sample at 131k rows: about 5 s per Lloyd iteration on one core (384-d).
MIN_ROWS_PER_CENTROID = 32
MAX_NLIST = 1 << 16
# An index trains once its store holds this many rows (and at least nlist); below it
# every query scans the store, which is exact and, at this size, fast. Training this
# early keeps the untrained state rare; RETRAIN_GROWTH retrains as the index grows.
TRAIN_MIN_ROWS = 64
# An ingest that leaves a centroid index with this many times the rows its centroids
# were trained on retrains and rebuilds it: nlist follows sqrt(n), so a query's share
# of the corpus keeps shrinking, and the rebuilds cost O(n) in all (a geometric series).
RETRAIN_GROWTH = 4
# Rows sampled per centroid for training (capped by the store), and Lloyd iterations.
# On the 121,900 real MiniLM vectors of benchmarks/realdata.py (1,024 centroids, 64
# probed, best 100 by code reranked; 200 held-out queries), 16 rows x 8 iterations
# reached recall@10 0.953 in 1.0 s of training, 32 x 20 0.951 in 4.0 s, 64 x 20
# 0.955 in 9.2 s: more only costs build time at this size.
TRAIN_ROWS_PER_CENTROID = 16
ITERATIONS = 8
_SETTLED = 1e-3
# Two float32 dot products of the same vector, summed in different orders, differ by at
# most about 2 * dim * eps * L1(vector) (|centroid| <= 1 per coordinate): best-two gaps
# within that bound are decided again in float64 (Centroids._nearest).
_F32_EPS = float(np.finfo(np.float32).eps)
# Rows per block of scores: a (block, nlist) score matrix stays near 64 MiB (float64).
_SCORE_CELLS = 1 << 23
# Fewest bits in a ranking code. One sign per dimension is enough at 384-d; a 64-d
# vector's 64 signs ranked so coarsely that reranking 100 candidates kept recall@10 at
# 0.58 on clustered test vectors (0.985 at 400): below this many dimensions the codes
# take their signs along MIN_CODE_BITS random directions instead.
MIN_CODE_BITS = 256


# Candidates a query reranks by exact cosine after its probed buckets' codes ranked
# them (when no top_p is given). On the 121,900 real MiniLM vectors (1,024
# centroids, 85 probed) depth 100 reached recall@10 0.960 and depth 200 0.962, at
# the same p50 (2.2 ms, memory store); on clustered 64-d test vectors (256-bit
# projected codes) depth 100 reached 0.82, 200 0.96, 256 0.99. 200 holds on both.
DEFAULT_RERANK_DEPTH = 200


def default_probes(nlist: int) -> int:
    """Centroids a query visits: 3 sqrt(nlist), at least 8 (all of a small index).

    The share a query must visit falls as the centroids grow finer. Tuned for
    recall@10 0.95 on uniform samples of the real MiniLM corpus
    (benchmarks/results/growth.md, probes in steps of sqrt(2)): 512 centroids
    needed 64-91 probes (64 reached 0.945), 1,024 needed 64 at 121,700
    vectors and 91 at 60,000. A fixed share (the earlier nlist / 12: 42 of
    512) fell short on the smaller index and made candidates grow like n;
    3 sqrt(nlist) gives 68 and 96, and candidates growing like n^0.75 when
    nlist grows like sqrt(n).
    """
    return min(nlist, max(8, round(3 * math.sqrt(nlist))))


def default_nlist(n_vectors: int) -> int:
    """About 4*sqrt(n) centroids, a power of two, with MIN_ROWS_PER_CENTROID rows each.

    A query pays nlist centroid scores plus nprobe*n/nlist candidate codes;
    balancing the two puts nlist near sqrt(n) times a constant, and then
    candidates (and query time) grow like sqrt(n) rather than n. The power of
    two keeps num_bits tight; the clamp keeps each centroid trainable.
    """
    if n_vectors < MIN_ROWS_PER_CENTROID:
        return 1
    target = 2 ** round(math.log2(4 * math.sqrt(n_vectors)))
    most = 2 ** int(math.log2(n_vectors // MIN_ROWS_PER_CENTROID))
    return int(max(1, min(target, most, MAX_NLIST)))


def train(sample: NDArray[np.float32], nlist: int, *, seed: int, iterations: int = ITERATIONS) -> NDArray[np.float32]:
    """Unit centroids (nlist, dim) maximising the summed cosine of each sample row to its nearest one.

    Deterministic for a seed: the random draws come from `seed` alone and the
    arithmetic is in a fixed order. Lloyd's iterations stop early once at most
    one row in a thousand changes its centroid: later iterations moved the mean
    cosine by under 0.0005 in benchmarks/centroids.py's sets.
    """
    x = _unit_rows(sample, "sample")
    nlist = inputs.positive("nlist", nlist)
    inputs.positive("iterations", iterations)
    if len(x) < nlist:
        raise ValueError(f"sample: expected at least nlist={nlist} rows, got {len(x)}")
    rng = np.random.default_rng(seed)
    centroids = x[np.sort(rng.choice(len(x), nlist, replace=False))]
    labels = np.full(len(x), -1, dtype=np.int64)
    for _ in range(iterations):
        new_labels, best, sums = _lloyd_pass(x, centroids)
        empty = np.flatnonzero(np.linalg.norm(sums, axis=1) == 0)
        # reseed on the worst-served rows: where a new centroid gains most, with no random draw
        sums[empty] = x[np.argsort(best, kind="stable")[: len(empty)]]
        centroids = (sums / np.linalg.norm(sums, axis=1, keepdims=True)).astype(np.float32)
        moved = np.count_nonzero(new_labels != labels)
        labels = new_labels
        if moved <= _SETTLED * len(x) and not len(empty):
            break
    return centroids


def _lloyd_pass(
    x: NDArray[np.float32], centroids: NDArray[np.float32]
) -> tuple[NDArray[np.int64], NDArray[np.float32], NDArray[np.float64]]:
    """Each row's nearest centroid and cosine, and the member sums, in blocks so a 1M-row sample fits."""
    labels = np.empty(len(x), dtype=np.int64)
    best = np.empty(len(x), dtype=np.float32)
    sums = np.zeros(centroids.shape, dtype=np.float64)
    step = min(1 << 16, max(1, _SCORE_CELLS // len(centroids)))
    for start in range(0, len(x), step):
        block = x[start : start + step]
        scores = block @ centroids.T
        near = np.argmax(scores, axis=1)
        labels[start : start + step] = near
        best[start : start + step] = np.take_along_axis(scores, near[:, None], axis=1)[:, 0]
        _add_member_sums(sums, block, near)
    return labels, best, sums


def _add_member_sums(sums: NDArray[np.float64], block: NDArray[np.float32], near: NDArray[np.int64]) -> None:
    """sums[k] += the float64 sum of `block`'s rows nearest centroid k.

    Rows sorted by centroid, then one contiguous sum per centroid: on 16,384
    x 384 real rows and 1,024 centroids 12 ms, where `np.add.reduceat` over
    the same sorted rows took 50-58 ms (as long as the pass's score product),
    and `np.add.at` 231 ms.
    """
    order = np.argsort(near, kind="stable")
    members = block[order]
    bounds = np.searchsorted(near[order], np.arange(len(sums) + 1)).tolist()
    for k, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
        if hi > lo:
            sums[k] += members[lo:hi].sum(axis=0, dtype=np.float64)


@dataclass(frozen=True)
class Centroids:
    """Buckets drawn from the data: a vector lives in its nearest centroid's bucket."""

    kind: ClassVar[str] = "centroids"
    trained: ClassVar[bool] = True
    centroids: NDArray[np.float32]
    mean: NDArray[np.float32]
    trained_rows: int = 0  # store rows when trained: stats() compares it with the rows indexed now
    # (MIN_CODE_BITS, dim) random directions the codes take their signs along, for vectors of
    # fewer than MIN_CODE_BITS dimensions; None: one sign per dimension
    projection: NDArray[np.float32] | None = None
    num_tables: int = field(init=False)
    num_bits: int = field(init=False)
    _centroids64: NDArray[np.float64] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "num_tables", 1)
        object.__setattr__(self, "num_bits", max(1, math.ceil(math.log2(len(self.centroids)))))
        object.__setattr__(self, "_centroids64", self.centroids.astype(np.float64))

    @property
    def dim(self) -> int:
        return int(self.centroids.shape[1])

    @property
    def nlist(self) -> int:
        return int(self.centroids.shape[0])

    @property
    def default_probes(self) -> int:
        return default_probes(self.nlist)

    @property
    def code_bytes(self) -> int:
        """Bytes of the ranking code each bucket entry carries: one sign bit per dimension (or projection)."""
        bits = self.dim if self.projection is None else len(self.projection)
        return (bits + 7) // 8

    def rank_codes(self, vectors: NDArray[np.float32]) -> NDArray[np.uint8]:
        """The ranking code stored beside each vector's id, shape (n, code_bytes)."""
        if self.projection is None:
            return rank_codes(vectors, self.mean)
        return np.packbits(self._coded(vectors) > 0, axis=1)

    def _coded(self, vectors: NDArray[np.float32]) -> NDArray[np.float32]:
        """What the code bits are the signs of: the centred vector, projected when it has few dimensions."""
        centred = centre(vectors, self.mean)
        return centred if self.projection is None else centred @ self.projection.T

    def code_scores(
        self,
        queries: NDArray[np.float32],
        query_index: NDArray[np.int64],
        codes: NDArray[np.uint8],
        at: NDArray[np.int64] | None = None,
    ) -> NDArray[np.float32]:
        """How close each candidate's code is to its query's vector (higher is closer), shape (m,).

        Two stages: the Hamming distance to the query's own code (3x cheaper)
        keeps each query's best `PREFILTER` candidates, and only those get the
        asymmetric score; the rest score -inf. On the real corpus (8,300
        candidates a query, best 100 reranked) this kept recall@10 at 0.953,
        as scoring all of them does, in 0.65 ms instead of 1.0 ms.

        Candidate i's code is ``codes[at[i]]`` when `at` is given (a batch's
        bucket read holds each code once, however many queries probed it).
        A batch is scored one query at a time, over each query's run of
        candidates (they arrive grouped by query), gathering only that run's
        codes: sorting a whole batch's distances by (query, distance), and
        gathering every candidate's code up front (100 MB for 200 queries),
        made query_many of 200 real queries spend 350 ms of its 480 in them.
        """
        compiled = kernels.score_runs()
        if compiled is not None:
            return self._compiled_scores(compiled, queries, query_index, codes, at)
        if at is None and len(queries) == 1:
            return self._one_query_scores(queries, codes)
        scores = np.empty(len(query_index), dtype=np.float32)
        for q, lo, hi in runs(query_index):
            run = codes[lo:hi] if at is None else codes[at[lo:hi]]
            scores[lo:hi] = self._one_query_scores(queries[q : q + 1], run)
        return scores

    def best_by_code(
        self,
        queries: NDArray[np.float32],
        query_index: NDArray[np.int64],
        codes: NDArray[np.uint8],
        at: NDArray[np.int64] | None,
        depth: int,
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """Each query's best `depth` candidates by `code_scores`: their positions and scores, best first.

        Grouped by query in the order the runs arrive; ties go to the
        earlier position. Compiled, the selection happens in the scoring
        pass and nothing the length of the whole candidate list is sorted.
        """
        best = kernels.best_runs()
        if best is not None:
            return best(*self._kernel_inputs(queries, query_index, codes, at), PREFILTER, depth)  # type: ignore[no-any-return]
        scores = self.code_scores(queries, query_index, codes, at).astype(np.float64)
        limits = np.full(len(queries), depth, np.int64)
        chosen = best_per_query(Pairs(query_index, np.arange(len(scores), dtype=np.int64), scores), limits)
        return chosen.ids, chosen.value.astype(np.float32)

    def _compiled_scores(
        self,
        compiled: kernels.ScoreRuns,
        queries: NDArray[np.float32],
        query_index: NDArray[np.int64],
        codes: NDArray[np.uint8],
        at: NDArray[np.int64] | None,
    ) -> NDArray[np.float32]:
        """`code_scores` in one compiled pass (lshrs.kernels): the same candidates kept, the same scores."""
        return compiled(*self._kernel_inputs(queries, query_index, codes, at), PREFILTER)

    def _kernel_inputs(
        self,
        queries: NDArray[np.float32],
        query_index: NDArray[np.int64],
        codes: NDArray[np.uint8],
        at: NDArray[np.int64] | None,
    ) -> tuple[Any, ...]:
        """The compiled kernels' arguments up to `keep` (see lshrs._compiled.score_runs)."""
        words, readable = code_words(codes)
        query_codes = padded_codes(self.rank_codes(queries))
        run_query, bounds = run_bounds(query_index)
        rows = np.empty(0, np.int64) if at is None else np.ascontiguousarray(at, dtype=np.int64)
        tables = code_tables(self._coded(queries), codes.shape[1])
        return words, readable, rows, bounds, run_query, query_codes.view(np.uint64), tables

    def _one_query_scores(self, query: NDArray[np.float32], codes: NDArray[np.uint8]) -> NDArray[np.float32]:
        scores = np.full(len(codes), -np.inf, dtype=np.float32)
        keep = prefilter(hamming_one(self.rank_codes(query), codes))
        scores[keep] = asymmetric_scores(self._coded(query), np.zeros(len(keep), np.int64), codes[keep])
        return scores

    @classmethod
    def from_definition(cls, definition: Any) -> Centroids | Untrained:
        """Rebuild from an index definition (`lshrs.definition.Definition`) read back from Redis."""
        if "centroids" not in definition.family_fields:
            return Untrained(definition.dim)
        return cls.from_fields(definition.family_fields, definition.dim)

    @classmethod
    def fit(cls, sample: NDArray[np.float32], nlist: int, *, seed: int, trained_rows: int = 0) -> Centroids:
        """Train on `sample`; its mean unit row centres the ranking codes."""
        centroids = train(sample, nlist, seed=seed)
        mean = _unit_rows(sample, "sample").mean(axis=0, dtype=np.float64).astype(np.float32)
        dim = centroids.shape[1]
        projection = None
        if dim < MIN_CODE_BITS:
            drawn = np.random.default_rng(seed).standard_normal((MIN_CODE_BITS, dim))
            projection = (drawn / np.linalg.norm(drawn, axis=1, keepdims=True)).astype(np.float32)
        return cls(centroids, mean, trained_rows or len(sample), projection)

    def _rows(self, vectors: NDArray[np.float32]) -> NDArray[np.float32]:
        """`vectors` as float32 rows of this family's dimension; ValueError naming the shape otherwise."""
        x = np.asarray(vectors, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"vectors: expected shape (n, {self.dim}), got {x.shape}")
        return x

    def codes(self, vectors: NDArray[np.float32]) -> NDArray[np.int64]:
        """Bucket of each vector, shape (n, 1): its nearest centroid, ties to the lowest index.

        In blocks of rows, so an ingest batch never holds its whole (n, nlist) score matrix.
        """
        step = max(1, _SCORE_CELLS // self.nlist)
        blocks = [self._nearest(vectors[i : i + step]) for i in range(0, len(vectors), step)]
        return np.concatenate(blocks or [np.empty(0, np.int64)]).astype(np.int64)[:, None]

    def _nearest(self, block: NDArray[np.float32]) -> NDArray[np.int64]:
        """argmax in float32 (4x faster than float64), redone in float64 where the best two nearly tie.

        A stored vector must land in the same bucket whatever batch it is
        re-hashed in (removal finds its entry that way), and float32 BLAS
        rounds differently with the batch shape. Rounding can only swap two
        scores closer than its error, so those rows, and only those, are
        decided again in float64, where batch shape no longer matters.
        """
        x = self._rows(block)
        scores = x @ self.centroids.T
        rows = np.arange(len(x))
        best = np.argmax(scores, axis=1)
        top = scores[rows, best].copy()
        scores[rows, best] = -np.inf
        second = scores.max(axis=1) if self.nlist > 1 else top - np.inf
        bound = 2 * self.dim * _F32_EPS * np.abs(x).sum(axis=1)
        close = np.flatnonzero(top - second <= bound)
        if len(close):
            best[close] = self._decide(x[close], scores[close], best[close], top[close] - bound[close])
        return best.astype(np.int64)

    def _decide(
        self, x: NDArray[np.float32], scores: NDArray[np.float32], best: NDArray[np.int64], floor: NDArray[np.float32]
    ) -> NDArray[np.int64]:
        """The float64 argmax of each row among the centroids float32 could not tell from its best.

        A centroid scoring below `floor` in float32 cannot win in exact
        arithmetic, so only the few at or above it (and the float32 best,
        its score masked in `scores`) are scored again, pair by pair, ties to
        the lowest index. Scoring every centroid in float64 instead took a
        fifth of a 256-vector ingest at 4,096 centroids.
        """
        candidates = scores >= floor[:, None]
        candidates[np.arange(len(x)), best] = True
        rows, cols = np.nonzero(candidates)
        exact = np.einsum("ij,ij->i", x[rows].astype(np.float64), self._centroids64[cols])
        order = np.lexsort((cols, -exact, rows))
        first = np.r_[True, rows[order][1:] != rows[order][:-1]]
        return cols[order][first].astype(np.int64)

    def probes(self, vectors: NDArray[np.float32], num_probes: int) -> NDArray[np.int64]:
        """The `num_probes` nearest centroids of each query, best first, shape (n, 1, probes).

        Scored in float32 alone (5x faster than in float64, 0.02 ms against
        0.1 ms a query at 1,024 x 384): which bucket a vector is stored in
        must not depend on rounding (`_nearest`), which ones a query visits may.
        """
        scores = self._rows(vectors) @ self.centroids.T
        p = max(1, min(int(num_probes), self.nlist))
        if p < self.nlist:
            top = np.argpartition(-scores, p - 1, axis=1)[:, :p]
        else:
            top = np.broadcast_to(np.arange(p), scores.shape)
        top = np.sort(top, axis=1)  # equal scores keep index order, as argmax does
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
        return np.take_along_axis(top, order, axis=1).astype(np.int64)[:, None, :]

    def fields(self) -> dict[str, bytes | int]:
        """What the index definition stores: raw little-endian float32 bytes and sizes."""
        return {
            "centroids": self.centroids.astype("<f4").tobytes(),
            "mean": self.mean.astype("<f4").tobytes(),
            "nlist": self.nlist,
            "trained_rows": self.trained_rows,
            **({} if self.projection is None else {"projection": self.projection.astype("<f4").tobytes()}),
        }

    @classmethod
    def from_fields(cls, fields: Mapping[str, bytes], dim: int) -> Centroids:
        """Rebuild from `fields()` as read back from Redis (values may arrive as bytes)."""
        nlist = int(fields["nlist"])
        centroids = np.frombuffer(fields["centroids"], dtype="<f4").astype(np.float32)
        mean = np.frombuffer(fields["mean"], dtype="<f4").astype(np.float32)
        if centroids.size != nlist * dim or mean.size != dim:
            raise ValueError(f"fields: expected {nlist}x{dim} centroids and {dim} mean floats, "
                             f"got {centroids.size} and {mean.size}")  # fmt: skip
        projection = None
        if "projection" in fields:
            projection = np.frombuffer(fields["projection"], dtype="<f4").astype(np.float32).reshape(-1, dim)
        return cls(centroids.reshape(nlist, dim), mean, int(fields.get("trained_rows", 0)), projection)


@dataclass(frozen=True)
class Untrained:
    """A centroid index whose store is still too small to train on: no buckets; queries scan the store.

    Written to the definition as soon as the index exists, so every process
    knows the index's family before there are centroids to share.
    """

    kind: ClassVar[str] = "centroids"
    trained: ClassVar[bool] = False
    code_bytes: ClassVar[int] = 0
    num_tables: ClassVar[int] = 1
    num_bits: ClassVar[int] = 1
    dim: int

    @property
    def default_probes(self) -> int:
        return DEFAULT_NUM_PROBES  # nothing to probe yet: the index-wide default until it trains

    def codes(self, vectors: NDArray[np.float32]) -> NDArray[np.int64]:
        raise RuntimeError("centroids are not trained yet: the index has no buckets to place vectors in")

    def probes(self, vectors: NDArray[np.float32], num_probes: int) -> NDArray[np.int64]:
        return self.codes(vectors)[:, :, None]

    def rank_codes(self, vectors: NDArray[np.float32]) -> NDArray[np.uint8]:
        return np.empty((len(vectors), 0), np.uint8)

    def code_scores(
        self,
        queries: NDArray[np.float32],
        query_index: NDArray[np.int64],
        codes: NDArray[np.uint8],
        at: NDArray[np.int64] | None = None,
    ) -> NDArray[np.float32]:
        raise RuntimeError("centroids are not trained yet")

    def best_by_code(
        self,
        queries: NDArray[np.float32],
        query_index: NDArray[np.int64],
        codes: NDArray[np.uint8],
        at: NDArray[np.int64] | None,
        depth: int,
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        raise RuntimeError("centroids are not trained yet")

    def fields(self) -> dict[str, bytes | int]:
        return {}


# -- input checks -----------------------------------------------------------------------


def _unit_rows(sample: Any, name: str) -> NDArray[np.float32]:
    """The rows of a 2-d float array scaled to unit length; NaN, inf and zero rows refused."""
    x = np.asarray(sample)
    if x.dtype.kind not in "fiu":
        raise TypeError(f"{name}: expected floats, got dtype {x.dtype}")
    if x.ndim != 2 or 0 in x.shape:
        raise ValueError(f"{name}: expected a non-empty 2-d array (rows, dim), got shape {x.shape}")
    x = x.astype(np.float32, copy=False)
    if not np.isfinite(x).all():
        raise ValueError(f"{name}: holds NaN or inf")
    norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))[:, None]  # float64: no over- or underflow
    if (norms == 0).any():
        raise ValueError(f"{name}: row {int(np.flatnonzero(norms[:, 0] == 0)[0])} is all zeros")
    return (x / norms).astype(np.float32)
