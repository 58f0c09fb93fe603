"""Every store backend against the same protocol, on real servers."""

import numpy as np
import psycopg
import pytest

from lshrs import LSHRS, MemoryStore, PostgresStore, RedisStore, SQLiteStore


@pytest.fixture(params=["memory", "sqlite", "postgres-bytea", "postgres-real[]", "pgvector", "redis"])
def store(request, tmp_path, name, redis_client):
    kind = request.param
    if kind == "memory":
        yield MemoryStore()
    elif kind == "sqlite":
        yield SQLiteStore(tmp_path / "s.sqlite3", table=name)
    elif kind == "redis":
        s = RedisStore(redis_client, name=name)
        yield s
        for key in redis_client.scan_iter(match=f"lshrs-docs:{name}:*"):
            redis_client.delete(key)
    else:
        dsn = request.getfixturevalue("pgvector_dsn" if kind == "pgvector" else "postgres_dsn")
        vector_type = {"postgres-bytea": "bytea", "postgres-real[]": "real[]", "pgvector": "vector"}[kind]
        s = PostgresStore(dsn, table=name, vector_type=vector_type)
        yield s
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP TABLE "{name}"')


def test_put_get_in_requested_order(store):
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((5, 7)).astype(np.float32)
    store.put(
        np.array([5, 1, 9, -3, 2**40]),
        vectors,
        ["five", "one", None, "minus three", "big"],
        [{"k": 5}, None, {"nested": {"a": [1, 2]}}, {}, {"u": "ünï"}],
    )
    rows = store.get(np.array([9, 123, 5, 2**40, 1]))
    assert rows.ids.tolist() == [9, 5, 2**40, 1]
    assert rows.vectors.dtype == np.float32 and rows.vectors.shape == (4, 7)
    np.testing.assert_array_equal(rows.vectors, vectors[[2, 0, 4, 1]])
    assert rows.texts == [None, "five", "big", "one"]
    assert rows.metadata == [{"nested": {"a": [1, 2]}}, {"k": 5}, {"u": "ünï"}, None]
    bare = store.get(np.array([1, 5]), payload=False)
    assert bare.ids.tolist() == [1, 5] and bare.texts is None
    # the vector-only read (RedisStore: one server-side call) keeps order, skips unknown ids
    bare = store.get(np.array([9, 123, -3, 2**40]), payload=False)
    assert bare.ids.tolist() == [9, -3, 2**40]
    np.testing.assert_array_equal(bare.vectors, vectors[[2, 3, 4]])
    assert len(store.get(np.array([123, 456]), payload=False)) == 0
    assert store.count() == 5 and store.dim() == 7


def test_put_replaces_and_delete_counts(store):
    store.put(np.array([1, 2]), np.ones((2, 3), np.float32), ["a", "b"])
    store.put(np.array([2]), np.full((1, 3), 2, np.float32), ["B"])
    rows = store.get(np.array([2]))
    assert rows.texts == ["B"] and rows.vectors[0].tolist() == [2, 2, 2]
    assert store.count() == 2
    assert store.delete(np.array([2, 77])) == 1
    assert store.count() == 1
    assert len(store.get(np.array([2]))) == 0


def test_scan_in_id_order_from_a_checkpoint(store):
    ids = np.random.default_rng(1).permutation(2_500) - 100
    store.put(ids, np.random.default_rng(2).standard_normal((2_500, 4)).astype(np.float32))
    batches = list(store.scan(batch_size=1_000))
    assert [len(b) for b in batches] == [1_000, 1_000, 500]
    seen = np.concatenate([b.ids for b in batches])
    assert np.array_equal(seen, np.sort(ids))
    after = np.concatenate([b.ids for b in store.scan(batch_size=700, after=1_000)])
    assert np.array_equal(after, np.arange(1_001, 2_400))


def test_hostile_text_round_trips(store):
    texts = ["it's; DROP TABLE x; --", 'quote " and \\ backslash', "x" * 200_000, "名前 🚀 \u2028"]
    store.put(np.arange(4), np.ones((4, 2), np.float32), texts, [{"q'\"": t[:50]} for t in texts])
    rows = store.get(np.arange(4))
    assert rows.texts == texts
    assert rows.metadata == [{"q'\"": t[:50]} for t in texts]


def test_nul_bytes(store):
    if isinstance(store, PostgresStore):
        with pytest.raises(ValueError, match="NUL"):
            store.put(np.arange(2), np.ones((2, 2), np.float32), ["fine", "nul\x00byte"])
        assert store.count() == 0
    else:
        store.put(np.arange(2), np.ones((2, 2), np.float32), ["fine", "nul\x00byte"])
        assert store.get(np.array([1])).texts == ["nul\x00byte"]


def test_index_over_each_store(store, redis_client, name):
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((3_000, 16)).astype(np.float32)
    store.put(np.arange(3_000), vectors, [f"t{i}" for i in range(3_000)])
    lsh = LSHRS(name=name, redis=redis_client, store=store)
    try:
        assert lsh.dim == 16
        assert lsh.index() == 3_000
        hit = lsh.query(vectors[17], top_k=3)[0]
        assert (hit.id, hit.text) == (17, "t17")
        assert lsh.delete([17, 18]) == 2
        assert lsh.query(vectors[17], top_k=1)[0].id != 17
    finally:
        lsh.clear()


def test_vector_reads_of_thousands_of_ids_keep_order(store):
    """Candidate fetches span thousands of ids (RedisStore cuts them into chunks of 2,000 per script)."""
    vectors = np.random.default_rng(1).standard_normal((4_500, 4)).astype(np.float32)
    store.put(np.arange(4_500) * 2, vectors)
    wanted = np.random.default_rng(2).permutation(9_000)  # odd ids are unknown
    rows = store.get(wanted, payload=False)
    assert rows.ids.tolist() == [i for i in wanted.tolist() if i % 2 == 0]
    np.testing.assert_array_equal(rows.vectors, vectors[rows.ids // 2])


def test_memory_store_shared_by_threads_loses_nothing():
    """The async verbs write a MemoryStore from worker threads; unguarded, concurrent puts lost rows and
    raised IndexError (issue 14: 24,210 rows lost over 20 rounds of this before the lock)."""
    import threading

    errors: list[BaseException] = []
    for _ in range(5):
        store = MemoryStore()
        store.put(np.arange(10**6, 10**6 + 20_000), np.ones((20_000, 8), np.float32))

        def writer(k: int, store: MemoryStore = store) -> None:
            try:
                for j in range(50):
                    base = k * 100_000 + j * 10
                    store.put(np.arange(base, base + 10), np.ones((10, 8), np.float32))
            except BaseException as exc:  # the thread's error, for the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors and store.count() == 20_000 + 4 * 50 * 10


def test_sqlite_replace_keeps_the_columns_lshrs_does_not_map(tmp_path):
    """SQLiteStore upserted by DELETE + INSERT, wiping a user's own columns (issue 14); Postgres kept them."""
    import sqlite3

    path = tmp_path / "docs.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE pages (id INTEGER PRIMARY KEY, vector BLOB NOT NULL, text TEXT, url TEXT)")
        conn.execute("INSERT INTO pages VALUES (7, ?, 'old', 'https://example.org/7')", (bytes(16),))
    store = SQLiteStore(path, table="pages", metadata_column=None)
    store.put(np.array([7, 8]), np.ones((2, 4), np.float32), ["new", "eight"])
    assert store.get(np.array([7])).texts == ["new"]
    with sqlite3.connect(path) as conn:
        kept = conn.execute("SELECT id, url FROM pages ORDER BY id").fetchall()
    assert kept == [(7, "https://example.org/7"), (8, None)]
    store.close()
