"""Random sequences of verbs against a reference model (a dict id -> vector), on the real Redis.

After every step: the store and the buckets hold exactly the model's ids, an
exact query answers the brute-force top-k, and the buckets equal a fresh
re-hash of the stored vectors (no lost ids, no stale ids). Invalid operations
raise ValueError/TypeError and change nothing.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from lshrs import LSHRS, MemoryStore, SQLiteStore

DIM = 8
TABLES = 4
MAX_ID = 40

ids_lists = st.lists(st.integers(0, MAX_ID), min_size=1, max_size=5, unique=True)
top_ks = st.integers(1, 10)


def vector_batches(n: int) -> st.SearchStrategy[np.ndarray]:
    """Small-integer vectors: many exact duplicates and ties, so buckets are shared; never all-zero."""
    cells = arrays(np.int8, (n, DIM), elements=st.integers(-3, 3))
    return cells.map(
        lambda a: np.where(a.any(axis=1, keepdims=True), a, np.eye(1, DIM, dtype=np.int8)).astype(np.float32)
    )


def cosine(query: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    q = query.astype(np.float64) / np.linalg.norm(query)
    v = vectors.astype(np.float64)
    return v @ q / np.linalg.norm(v, axis=1)


# Ids no rule ever writes (generated ids jump ahead when they meet stored ones, so not 50..52).
UNUSED = [10**6, 10**6 + 1, 10**6 + 2]

# Each invalid call: (what it does, the exceptions it may raise). `known` is some stored id or 0.
INVALID: dict[str, Callable[[LSHRS, int], Any]] = {
    "wrong dim": lambda lsh, known: lsh.ingest(vectors=np.ones((1, DIM + 1)), ids=[known]),
    "NaN": lambda lsh, known: lsh.ingest(vectors=[[np.nan] + [1.0] * (DIM - 1)], ids=[known]),
    "inf": lambda lsh, known: lsh.ingest(vectors=[[np.inf] * DIM], ids=[known]),
    "zero vector": lambda lsh, known: lsh.ingest(vectors=np.zeros((1, DIM)), ids=[known]),
    "bad row after good ones": lambda lsh, known: lsh.ingest(
        vectors=np.vstack([np.ones((3, DIM)), np.zeros((1, DIM))]), ids=[known, *UNUSED]
    ),
    "duplicate ids": lambda lsh, known: lsh.ingest(vectors=np.ones((2, DIM)), ids=[known, known]),
    "empty batch": lambda lsh, known: lsh.ingest(vectors=np.empty((0, DIM)), ids=[]),
    "float ids": lambda lsh, known: lsh.ingest(vectors=np.ones((1, DIM)), ids=[1.5]),
    "str ids": lambda lsh, known: lsh.ingest(vectors=np.ones((1, DIM)), ids=["7"]),
    "bool ids": lambda lsh, known: lsh.ingest(vectors=np.ones((1, DIM)), ids=[True]),
    "too few ids": lambda lsh, known: lsh.ingest(vectors=np.ones((2, DIM)), ids=[known]),
    "id out of range": lambda lsh, known: lsh.ingest(vectors=np.ones((1, DIM)), ids=[2**40]),
    "metadata not JSON": lambda lsh, known: lsh.ingest(vectors=np.ones((1, DIM)), ids=[known], metadata=[{"s": {1}}]),
    "lone surrogate": lambda lsh, known: lsh.ingest(texts=["\ud800"], vectors=np.ones((1, DIM)), ids=[known]),
    "delete nothing": lambda lsh, known: lsh.delete([]),
    "delete duplicates": lambda lsh, known: lsh.delete([known, known]),
    "delete str ids": lambda lsh, known: lsh.delete(["1"]),
    "top_k 0": lambda lsh, known: lsh.query(np.ones(DIM), top_k=0),
    "top_k float": lambda lsh, known: lsh.query(np.ones(DIM), top_k=2.5),
    "top_k bool": lambda lsh, known: lsh.query(np.ones(DIM), top_k=True),
    "query wrong dim": lambda lsh, known: lsh.query(np.ones(DIM - 1)),
    "query zero vector": lambda lsh, known: lsh.query(np.zeros(DIM)),
}


class IndexModel(RuleBasedStateMachine):
    """One fresh index per example; subclasses set the Redis client, the store and exact_below."""

    client: Any = None
    make_store: Callable[[], Any] = MemoryStore
    exact_below = 2_000

    def __init__(self) -> None:
        super().__init__()
        self.store = type(self).make_store()
        self.lsh = LSHRS(
            name="p" + uuid.uuid4().hex[:12],
            redis=self.client,
            store=self.store,
            dim=DIM,
            num_tables=TABLES,
            num_bits=3,
            batch_size=3,  # several slices per write
            exact_below=self.exact_below,
        )
        self.vectors: dict[int, np.ndarray] = {}
        self.payload: dict[int, tuple[str, dict[str, int]]] = {}
        self.version = 0

    def _write(self, ids: list[int] | None, vectors: np.ndarray) -> np.ndarray:
        self.version += 1
        texts = [f"v{self.version}:{i}" for i in range(len(vectors))]
        metas = [{"version": self.version, "row": i} for i in range(len(vectors))]
        written = self.lsh.ingest(texts=texts, vectors=vectors, ids=ids, metadata=metas)
        assert len(written) == len(vectors)
        for i, doc in enumerate(written.tolist()):
            self.vectors[doc] = vectors[i]
            self.payload[doc] = (texts[i], metas[i])
        return written

    @rule(data=st.data(), ids=ids_lists)
    def ingest_new(self, data: st.DataObject, ids: list[int]) -> None:
        ids = [i for i in ids if i not in self.vectors]
        if ids:
            self._write(ids, data.draw(vector_batches(len(ids))))

    @precondition(lambda self: self.vectors)
    @rule(data=st.data())
    def upsert(self, data: st.DataObject) -> None:
        ids = data.draw(st.lists(st.sampled_from(sorted(self.vectors)), min_size=1, max_size=5, unique=True))
        extra = data.draw(st.lists(st.integers(0, MAX_ID), max_size=2, unique=True))
        ids += [i for i in extra if i not in ids]  # sometimes new ids in the same batch
        self._write(ids, data.draw(vector_batches(len(ids))))

    @rule(vectors=st.integers(1, 4).flatmap(vector_batches))
    def ingest_without_ids(self, vectors: np.ndarray) -> None:
        before = set(self.vectors)
        written = self._write(None, vectors)
        assert before.isdisjoint(written.tolist()), "a drawn id replaced a stored document"

    @rule(known=st.data(), unknown=st.lists(st.integers(MAX_ID + 1, 2 * MAX_ID), max_size=3, unique=True))
    def delete(self, known: st.DataObject, unknown: list[int]) -> None:
        pool = sorted(self.vectors)
        gone = known.draw(st.lists(st.sampled_from(pool), max_size=4, unique=True)) if pool else []
        unknown = [i for i in unknown if i not in self.vectors]
        if not gone and not unknown:
            return
        assert self.lsh.delete(gone + unknown) == len(gone)
        for doc in gone:
            del self.vectors[doc], self.payload[doc]

    @rule(query=vector_batches(1), top_k=top_ks)
    def query(self, query: np.ndarray, top_k: int) -> None:
        hits = self.lsh.query(query[0], top_k=top_k)
        assert len(hits) == min(top_k, len(self.vectors))
        if not hits:
            return
        ids = sorted(self.vectors)
        truth = cosine(query[0], np.array([self.vectors[i] for i in ids]))
        by_id = dict(zip(ids, truth.tolist()))
        scores = [h.score for h in hits]
        assert len({h.id for h in hits}) == len(hits)
        assert all(h.id in self.vectors for h in hits), "a deleted id came back"
        assert np.allclose(scores, [by_id[h.id] for h in hits], atol=1e-5)
        assert scores == sorted(scores, reverse=True)
        assert all((h.text, h.metadata) == self.payload[h.id] for h in hits)
        if len(self.vectors) < self.exact_below:  # exact: the brute-force top-k, up to ties
            assert np.allclose(scores, np.sort(truth)[::-1][:top_k], atol=1e-5)

    @rule(query=vector_batches(1), top_k=top_ks)
    def query_buckets_only(self, query: np.ndarray, top_k: int) -> None:
        """rerank=False answers straight from the buckets: a stale id would show here."""
        hits = self.lsh.query(query[0], top_k=top_k, rerank=False)
        assert len(hits) <= top_k and len({h.id for h in hits}) == len(hits)
        assert all(h.id in self.vectors and 0 < h.score <= 1 for h in hits)

    @rule(kind=st.sampled_from(sorted(INVALID)))
    def invalid(self, kind: str) -> None:
        before = self._snapshot()
        with pytest.raises((ValueError, TypeError)):
            INVALID[kind](self.lsh, min(self.vectors, default=0))
        assert self._snapshot() == before

    def _snapshot(self) -> tuple[Any, ...]:
        rows = self.lsh.get(sorted(self.vectors) + UNUSED)
        return self.store.count(), self.lsh.count(), rows.ids.tolist(), rows.vectors.tobytes(), rows.texts

    @invariant()
    def store_matches_the_model(self) -> None:
        assert self.store.count() == len(self.vectors)
        ids = sorted(self.vectors)
        rows = self.lsh.get(ids)
        assert rows.ids.tolist() == ids
        if ids:
            assert np.array_equal(rows.vectors, np.array([self.vectors[i] for i in ids]))
        assert list(zip(rows.texts or [], rows.metadata or [])) == [self.payload[i] for i in ids]

    @invariant()
    def buckets_match_the_store(self) -> None:
        """Bucket entries == a fresh re-hash of the stored rows: no lost ids, no stale ids, no duplicates."""
        assert self.lsh.count() == len(self.vectors)
        assert self.lsh.hasher is not None
        expected: Counter[tuple[int, int, int]] = Counter()
        for rows in self.store.scan(batch_size=16):
            codes = self.lsh.hasher.codes(rows.vectors)
            expected.update((t, int(codes[r, t]), int(i)) for r, i in enumerate(rows.ids) for t in range(TABLES))
        found = Counter((t, c, i) for t, c, ids in self.lsh.buckets.every_bucket() for i in ids.tolist())
        assert found == expected

    def teardown(self) -> None:
        self.lsh.clear()
        if hasattr(self.store, "close"):
            self.store.close()


SETTINGS = settings(
    max_examples=40,
    stateful_step_count=20,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.mark.parametrize(
    "backend, exact_below",
    [("memory", 2_000), ("sqlite", 2_000), ("memory", 0)],
    ids=["memory-exact", "sqlite-exact", "memory-lsh-path"],
)
def test_random_verb_sequences_keep_store_buckets_and_results_right(redis_client, tmp_path, backend, exact_below):
    def make_store() -> Any:
        if backend == "memory":
            return MemoryStore()
        return SQLiteStore(tmp_path / f"{uuid.uuid4().hex}.sqlite3", table="docs")  # one file per example

    machine = type(
        "Model",
        (IndexModel,),
        {"client": redis_client, "make_store": staticmethod(make_store), "exact_below": exact_below},
    )
    run_state_machine_as_test(machine, settings=SETTINGS)
