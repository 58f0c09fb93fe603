"""Sign sketches of stored vectors, kept by the querying process: how `top_p` picks what to rerank.

Why a sketch: on real sentence embeddings a query's ten nearest neighbours
share buckets with many far vectors, and collision counts rank them poorly:
reranking 2% of a 122k MiniLM corpus by count keeps recall@10 at 0.76-0.92
(benchmarks/results/sketch.md). Ranking the same candidates by the Hamming
distance between 256-bit sign sketches keeps nearly all of it: 0.979 when
reranking the best 5% of the candidates (1% of the corpus) at the defaults.

Why in the process and not in Redis: picking 20,000 candidates' sketches out
of Redis with a Lua script took 40 ms (Lua handles about one candidate per
2 µs), as long as fetching their vectors; reading them from the store costs
as much as reading the vectors. A sketch is a function of a stored vector, so
the process computes it once, from vectors it fetched anyway, and keeps it.

Why it is safe: sketches only choose what to rerank; every score still comes
from the vector read from the store. A sketch goes stale only when a vector is
replaced or deleted, and every such write bumps the index's generation
(`Buckets.apply`), which each query reads with its buckets; a cache that sees
a new generation starts empty.
"""

from __future__ import annotations

import threading

import numpy as np
from numpy.typing import NDArray

DEFAULT_SKETCH_BITS = 256
# About 40 bytes per sketched vector (32 of sketch, 8 of id): 8.4 million
# entries, the English Wikipedia target, take about 340 MB per process.
DEFAULT_CAPACITY = 1 << 23
# Ids below this find their sketch through an id-indexed array (4 bytes per id up
# to the largest seen), as long as that array stays within _DIRECT_SPREAD slots
# per cached sketch (or _DIRECT_MIN slots): sparse ids go to the sorted runs.
DIRECT_IDS = 1 << 26
_DIRECT_MIN = 1 << 20
_DIRECT_SPREAD = 8
_SEED = 0x5EED  # the planes never leave the process, so any fixed seed will do
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


class SketchCache:
    """Id -> 256-bit sign sketch for the vectors this process has read, with Hamming ranking.

    Sketches sit in one growing array. Dense small ids (row numbers, serial
    keys) find their row through an id-indexed array: one gather per lookup,
    where a binary search over 120,000 ids took 5 ms for a query's 23,000
    candidates. Other ids (the 63-bit keys of string ids, sparse ids) go
    through two sorted runs, a large one and a recent one merged into it when
    it grows past a quarter of its size, so an insert sorts only the recent run.
    """

    def __init__(self, dim: int, *, bits: int = DEFAULT_SKETCH_BITS, capacity: int = DEFAULT_CAPACITY) -> None:
        if bits % 64:
            raise ValueError(f"sketch bits: expected a multiple of 64, got {bits}")
        self.dim = dim
        self.bits = bits
        self.capacity = capacity
        self._planes = np.random.default_rng(_SEED).standard_normal((dim, bits)).astype(np.float32)
        self._lock = threading.Lock()
        self.generation: bytes | None = None
        self._reset()

    def _reset(self) -> None:
        self._rows = np.empty((0, self.bits // 64), np.uint64)
        self._count = 0
        self._direct = np.empty(0, np.int32)  # id -> row, -1 when unknown
        self._runs = [_EMPTY_RUN, _EMPTY_RUN]  # sorted (ids, rows) of the large ids

    def __len__(self) -> int:
        return self._count

    def sketch(self, vectors: NDArray[np.float32]) -> NDArray[np.uint64]:
        """The sign sketch of each row, shape (n, bits / 64)."""
        signs = np.asarray(vectors, dtype=np.float32) @ self._planes > 0
        return np.packbits(signs, axis=1).view(np.uint64)

    def sync(self, generation: bytes | None) -> None:
        """Forget every sketch when the index's generation moved (a vector was replaced or deleted)."""
        with self._lock:
            if generation != self.generation:
                self.generation = generation
                self._reset()

    def lookup(self, ids: NDArray[np.int64]) -> tuple[NDArray[np.bool_], NDArray[np.uint64]]:
        """(known mask, sketches of the known ids in order)."""
        with self._lock:
            rows = self._find(ids)
            known = rows >= 0
            return known, self._rows[rows[known]]

    def _find(self, ids: NDArray[np.int64]) -> NDArray[np.int64]:
        """Row of each id, -1 when unknown."""
        rows = np.full(len(ids), -1, np.int64)
        direct = (ids >= 0) & (ids < len(self._direct))
        rows[direct] = self._direct[ids[direct]]
        rest = rows < 0
        if rest.any() and any(len(run_ids) for run_ids, _ in self._runs):
            wanted = ids[rest]
            found = rows[rest]
            for run_ids, run_rows in self._runs:
                if len(run_ids):
                    pos = np.minimum(np.searchsorted(run_ids, wanted), len(run_ids) - 1)
                    hit = run_ids[pos] == wanted
                    found[hit] = run_rows[pos[hit]]
            rows[rest] = found
        return rows

    def add(self, ids: NDArray[np.int64], vectors: NDArray[np.float32]) -> int:
        """Sketch and keep the vectors of ids not yet known, while there is room; returns how many were added."""
        with self._lock:
            fresh = np.flatnonzero(self._find(ids) < 0)
        _, first = np.unique(ids[fresh], return_index=True)
        take = fresh[first][: max(self.capacity - self._count, 0)]
        if not len(take):
            return 0
        rows = self.sketch(np.asarray(vectors)[take])  # outside the lock: the matrix product is the slow part
        with self._lock:
            new_ids = ids[take]
            keep = np.flatnonzero(self._find(new_ids) < 0)[: max(self.capacity - self._count, 0)]
            self._store(new_ids[keep], rows[keep])
        return len(keep)

    def _store(self, ids: NDArray[np.int64], rows: NDArray[np.uint64]) -> None:
        at = np.arange(self._count, self._count + len(ids), dtype=np.int64)
        if self._count + len(ids) > len(self._rows):
            grown = np.empty((max(2 * len(self._rows), self._count + len(ids), 1024), self.bits // 64), np.uint64)
            grown[: self._count] = self._rows[: self._count]
            self._rows = grown
        self._rows[at] = rows
        self._count += len(ids)
        direct = (ids >= 0) & (ids < DIRECT_IDS)
        if direct.any():
            top = int(ids[direct].max()) + 1
            if len(self._direct) < top <= max(_DIRECT_MIN, _DIRECT_SPREAD * self._count):
                grown_direct = np.full(min(DIRECT_IDS, max(2 * len(self._direct), top)), -1, np.int32)
                grown_direct[: len(self._direct)] = self._direct
                self._direct = grown_direct
            direct &= ids < len(self._direct)  # ids too sparse for the array go to the sorted runs
            self._direct[ids[direct]] = at[direct]
        if not direct.all():
            (big_ids, big_rows), recent = self._runs
            recent = _merge(recent, (ids[~direct], at[~direct]))
            if len(recent[0]) > max(4096, len(big_ids) // 4):
                self._runs = [_merge((big_ids, big_rows), recent), _EMPTY_RUN]
            else:
                self._runs[1] = recent

    def similarity(self, queries: NDArray[np.uint64], rows: NDArray[np.uint64]) -> NDArray[np.float64]:
        """1 - Hamming distance / bits of each row to its query row: an estimate of 1 - angle / pi, for ranking."""
        differ = np.bitwise_xor(rows, queries)
        count = getattr(np, "bitwise_count", None)  # numpy >= 2.0
        if count is not None:
            distance = count(differ).sum(axis=1, dtype=np.int64)
        else:
            distance = _POPCOUNT[differ.view(np.uint8)].sum(axis=1, dtype=np.int64)
        return 1.0 - distance / self.bits


Run = tuple[NDArray[np.int64], NDArray[np.int64]]
_EMPTY_RUN: Run = (np.empty(0, np.int64), np.empty(0, np.int64))


def _merge(a: Run, b: Run) -> Run:
    """Two id-sorted (ids, rows) runs as one (the ids are disjoint)."""
    ids = np.concatenate([a[0], b[0]])
    order = np.argsort(ids, kind="stable")
    return ids[order], np.concatenate([a[1], b[1]])[order]
