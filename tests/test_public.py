"""The public surface: what `import lshrs` offers, and the store protocol checked where it is used."""

from __future__ import annotations

import numpy as np
import pytest

import lshrs
from lshrs import LSHRS, MemoryStore, SQLiteStore
from lshrs.stores.base import OPTIONAL_METHODS, REQUIRED_METHODS, Store, capabilities

PUBLIC = {
    "LSHRS",
    "Hit",
    "MemoryStore",
    "PostgresStore",
    "RedisStore",
    "Rows",
    "SQLiteStore",
    "Store",
    "__version__",
}


def test_all_is_pinned_and_every_name_resolves():
    assert set(lshrs.__all__) == PUBLIC
    for name in lshrs.__all__:
        assert getattr(lshrs, name) is not None
    assert lshrs.__version__.split(".")[0] >= "1"


def test_required_methods_are_the_protocol_s_methods():
    declared = {n for n, v in vars(Store).items() if callable(v) and not n.startswith("_")}
    assert declared == set(REQUIRED_METHODS)
    assert not set(OPTIONAL_METHODS) & declared


class _NoScan:
    """A user's store that forgot scan()."""

    def put(self, ids, vectors, texts=None, metadata=None): ...
    def get(self, ids, *, payload=True): ...
    def delete(self, ids): ...
    def count(self): return 0  # fmt: skip

    def dim(self): return None  # fmt: skip


def test_a_store_without_a_required_method_is_refused_before_any_write(redis_client, name):
    with pytest.raises(TypeError, match=r"store: _NoScan lacks the store method\(s\) scan"):
        LSHRS(redis=redis_client, name=name, store=_NoScan(), dim=8)
    assert redis_client.exists(f"lshrs:{name}:meta") == 0


class _OldScan(MemoryStore):
    """A store written before scan() took payload=: it must still be scanned (reading everything)."""

    def scan(self, *, batch_size=10_000, after=None):  # type: ignore[override]
        return super().scan(batch_size=batch_size, after=after)


def test_capabilities_name_the_optional_parts(tmp_path):
    memory, old = capabilities(MemoryStore()), capabilities(_OldScan())
    sqlite = capabilities(SQLiteStore(tmp_path / "docs.sqlite3", table="docs"))
    assert memory.scan_payload and not old.scan_payload
    assert sqlite.find_where and not memory.find_where
    assert not memory.check


def test_a_store_with_an_old_scan_still_indexes_and_answers(make_index):
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((300, 16)).astype(np.float32)
    store = _OldScan()
    store.put(np.arange(300), vectors)
    lsh = make_index(store=store, exact_below=0)
    assert lsh.index() == 300
    assert lsh.query(vectors[7], top_k=1)[0].id == 7
    assert lsh.verify()["ok"]
