"""The async verbs against real Redis (redis.asyncio) and real stores (async psycopg for Postgres)."""

import asyncio
import time

import numpy as np
import pytest
import redis.asyncio
from conftest import clustered

from lshrs import LSHRS, MemoryStore, PostgresStore, SQLiteStore


def ranked(hits_per_query):
    """Ids per query; scores of one query computed in a batch or alone differ in the last float bits."""
    return [[h.id for h in hits] for hits in hits_per_query]


@pytest.mark.parametrize("n", [300, 3000])  # the exact scan of a small index, and the LSH path
async def test_async_verbs_match_the_sync_ones(make_index, store, n):
    vectors = clustered(n, dim=32, clusters=20)
    meta = [{"group": i % 4} for i in range(n)]
    lsh = make_index(store=store)
    ids = await lsh.aingest(vectors=vectors, texts=[f"doc {i}" for i in range(n)], metadata=meta)
    assert len(ids) == n and lsh.count() == n and store.count() == n
    queries = vectors[:20] + 0.05

    sync_hits = lsh.query_many(queries, top_k=5)
    async_hits = await lsh.aquery_many(queries, top_k=5)
    assert async_hits == sync_hits
    assert [h.id for h in await lsh.aquery(queries[3], top_k=5)] == [h.id for h in sync_hits[3]]
    filtered = await lsh.aquery(queries[0], top_k=5, filter={"group": 2})
    assert filtered == lsh.query(queries[0], top_k=5, filter={"group": 2}) and len(filtered) == 5

    together = await asyncio.gather(*(lsh.aquery(q, top_k=5) for q in queries))  # concurrent, one loop
    assert ranked(together) == ranked(sync_hits)
    assert np.allclose([h.score for hits in together for h in hits], [h.score for hits in sync_hits for h in hits])

    rows = await lsh.aget(ids[[4, 2]])
    assert rows.ids.tolist() == ids[[4, 2]].tolist() and rows.texts == ["doc 4", "doc 2"]
    assert await lsh.adelete(ids[:10].tolist() + [10**9]) == 10
    assert lsh.count() == n - 10 and store.count() == n - 10
    assert all(h.id not in set(ids[:10].tolist()) for h in await lsh.aquery(queries[0], top_k=20))
    await lsh.aclose()


async def test_async_replace_and_generated_ids(make_index, store):
    lsh = make_index(store=store)
    first = await lsh.aingest(vectors=np.eye(4, 8) + 0.1)
    again = await lsh.aingest(vectors=np.eye(4, 8) + 0.2)
    assert len(set(first.tolist()) | set(again.tolist())) == 8  # counter-drawn ids never collide
    await lsh.aingest(vectors=np.ones((1, 8)), ids=[int(first[0])], texts=["moved"])
    assert lsh.count() == 8 and store.count() == 8
    top = await lsh.aquery(np.ones(8), top_k=1)
    assert top[0].id == first[0] and top[0].text == "moved"
    await lsh.aclose()


async def test_async_bad_input_changes_nothing(make_index):
    lsh = make_index()
    await lsh.aingest(vectors=np.ones((2, 4)), ids=[1, 2])
    with pytest.raises(ValueError, match="expected shape"):
        await lsh.aingest(vectors=np.ones((2, 5)), ids=[3, 4])
    with pytest.raises(ValueError, match="NaN"):
        await lsh.aingest(vectors=np.array([[1.0, 2, 3, 4], [np.nan, 1, 1, 1]]), ids=[3, 4])
    with pytest.raises(ValueError, match="duplicate"):
        await lsh.aingest(vectors=np.ones((2, 4)), ids=[5, 5])
    with pytest.raises(ValueError, match="top_k"):
        await lsh.aquery(np.ones(4), top_k=0)
    assert lsh.count() == 2 and lsh.store.count() == 2
    await lsh.aclose()


def test_each_event_loop_gets_its_own_clients(make_index, name, tmp_path, postgres_dsn):
    lsh = make_index(store=PostgresStore(postgres_dsn, table=name))
    lsh.ingest(vectors=clustered(50, dim=8), ids=np.arange(50))

    async def one_query():
        client, _ = lsh.buckets.async_client()
        assert isinstance(client, redis.asyncio.Redis)
        hits = await lsh.aquery(np.ones(8), top_k=3)
        await lsh.aclose()
        return [h.id for h in hits]

    first = asyncio.run(one_query())
    assert asyncio.run(one_query()) == first == [h.id for h in lsh.query(np.ones(8), top_k=3)]


async def test_an_explicit_async_client_is_used(redis_url, name, tmp_path):
    given = redis.asyncio.Redis.from_url(redis_url)
    lsh = LSHRS(name=name, redis_url=redis_url, async_redis=given, store=SQLiteStore(tmp_path / "d.sqlite3"))
    await lsh.aingest(vectors=np.eye(3), ids=[1, 2, 3])
    assert lsh.buckets.async_client()[0] is given
    assert [h.id for h in await lsh.aquery(np.array([0, 1.0, 0]), top_k=1)] == [2]
    lsh.clear()
    await given.aclose()


class SlowPut(MemoryStore):
    """A MemoryStore whose put takes a second (run in a worker thread by the async verbs)."""

    def put(self, *args, **kwargs):
        time.sleep(1.0)
        return super().put(*args, **kwargs)


async def test_a_cancelled_write_releases_its_lease_at_once(make_index, redis_client, name):
    lsh = make_index(store=SlowPut())
    task = asyncio.create_task(lsh.aingest(vectors=np.ones((500, 8)), ids=np.arange(500)))
    await asyncio.sleep(0.3)  # inside the lease, waiting on the store
    assert redis_client.hlen(f"lshrs:{name}:locks") >= 500  # a stripe per id
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    held = [f for f in redis_client.hkeys(f"lshrs:{name}:locks") if f != b"waiting"]
    assert held == []  # released now, not after the lease's 60 s


async def test_a_write_cancelled_mid_store_write_still_reaches_the_buckets(make_index):
    """The store write runs on in its worker thread after a cancellation; the buckets must follow it."""
    lsh = make_index(store=SlowPut(), family="hyperplanes", exact_below=0)
    vectors = clustered(500, dim=8)
    task = asyncio.create_task(lsh.aingest(vectors=vectors, ids=np.arange(500)))
    await asyncio.sleep(0.3)  # the put is running in its thread
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(1.0)  # whatever the put thread still had to do is done
    report = lsh.verify()
    assert report["store_rows"] == 500
    assert report["ok"], report
    assert lsh.count() == 500
