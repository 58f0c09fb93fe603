"""In-process store for tests, notebooks and benchmarks.

Rows live in growable numpy arrays with a sorted id index, so lookups of a few
thousand rerank candidates are one `searchsorted`, not a Python loop.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

import numpy as np
from numpy.typing import NDArray

from lshrs.keywords import StaleAware
from lshrs.stores.base import Metadata, Rows, empty_rows, find_sorted


class MemoryStore:
    """Documents in memory; gone when the process exits.

    Safe to share between threads (the async verbs call it from worker
    threads): every read and write holds one lock.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._ids = np.empty(0, np.int64)
        self._vectors: NDArray[np.float32] | None = None
        self._texts: list[str | None] = []
        self._metadata: list[Metadata | None] = []
        self._alive = np.empty(0, bool)
        self._index_ids = np.empty(0, np.int64)
        self._index_rows = np.empty(0, np.int64)
        self._version = 0  # bumped by every write: the keyword index rebuilds after one
        self._keywords = StaleAware()

    def _lookup(self, ids: NDArray[np.int64]) -> NDArray[np.int64]:
        """Row number of each id, -1 where absent."""
        pos = find_sorted(self._index_ids, ids)
        rows = np.full(len(ids), -1, np.int64)
        rows[pos >= 0] = self._index_rows[pos[pos >= 0]]
        return rows

    def _reindex(self) -> None:
        self._version += 1
        rows = np.flatnonzero(self._alive)
        order = np.argsort(self._ids[rows], kind="stable")
        self._index_rows = rows[order]
        self._index_ids = self._ids[self._index_rows]

    def put(
        self,
        ids: NDArray[np.int64],
        vectors: NDArray[np.float32],
        texts: Sequence[str | None] | None = None,
        metadata: Sequence[Metadata | None] | None = None,
    ) -> None:
        with self._lock:
            self._put(ids, vectors, texts, metadata)

    def _put(
        self,
        ids: NDArray[np.int64],
        vectors: NDArray[np.float32],
        texts: Sequence[str | None] | None,
        metadata: Sequence[Metadata | None] | None,
    ) -> None:
        ids = np.asarray(ids, np.int64)
        vectors = np.asarray(vectors, np.float32)
        texts = list(texts) if texts is not None else [None] * len(ids)
        metadata = list(metadata) if metadata is not None else [None] * len(ids)
        rows = self._lookup(ids)
        old = rows >= 0
        if self._vectors is None:
            self._vectors = np.empty((0, vectors.shape[1]), np.float32)
        self._vectors[rows[old]] = vectors[old]
        for i in np.flatnonzero(old).tolist():
            self._texts[rows[i]] = texts[i]
            self._metadata[rows[i]] = metadata[i]
        new = ~old
        self._ids = np.concatenate([self._ids, ids[new]])
        self._vectors = np.concatenate([self._vectors, vectors[new]])
        self._alive = np.concatenate([self._alive, np.ones(int(new.sum()), bool)])
        self._texts += [texts[i] for i in np.flatnonzero(new).tolist()]
        self._metadata += [metadata[i] for i in np.flatnonzero(new).tolist()]
        self._reindex()

    def get(self, ids: NDArray[np.int64], *, payload: bool = True) -> Rows:
        with self._lock:
            return self._get(ids, payload)

    def _get(self, ids: NDArray[np.int64], payload: bool) -> Rows:
        ids = np.asarray(ids, np.int64)
        rows = self._lookup(ids)
        rows = rows[rows >= 0]
        if self._vectors is None:
            return empty_rows(0)
        picked = rows.tolist() if payload else []
        return Rows(
            self._ids[rows],
            self._vectors[rows],
            [self._texts[r] for r in picked] if payload else None,
            [self._metadata[r] for r in picked] if payload else None,
        )

    def delete(self, ids: NDArray[np.int64]) -> int:
        with self._lock:
            rows = self._lookup(np.unique(np.asarray(ids, np.int64)))
            rows = rows[rows >= 0]
            self._alive[rows] = False
            for r in rows.tolist():
                self._texts[r] = self._metadata[r] = None
            self._reindex()
            return len(rows)

    def scan(self, *, batch_size: int = 10_000, after: int | None = None, payload: bool = True) -> Iterator[Rows]:
        index_ids = self._index_ids  # replaced whole by writers, never changed in place: a stable snapshot
        start = 0 if after is None else int(np.searchsorted(index_ids, after, side="right"))
        for lo in range(start, len(index_ids), batch_size):
            yield self.get(index_ids[lo : lo + batch_size], payload=payload)

    def keyword_search(self, text: str, limit: int) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """The `limit` best BM25 matches for `text`, best first (lshrs.keywords), and their scores.

        The texts are copied out only when the index is rebuilt, not on every search.
        """
        return self._keywords.search(self._version, self._snapshot, text, limit)

    def _snapshot(self) -> list[tuple[int, str | None]]:
        with self._lock:
            return list(zip(self._index_ids.tolist(), [self._texts[r] for r in self._index_rows.tolist()]))

    def count(self) -> int:
        return len(self._index_ids)

    def dim(self) -> int | None:
        return None if self._vectors is None or self.count() == 0 else int(self._vectors.shape[1])
