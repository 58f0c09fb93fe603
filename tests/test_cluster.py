"""lshrs on a real 3-master Redis Cluster: every verb, both integrations, key spread, clear() and round trips.

The cluster (fixture `redis_cluster_url`) is built by Debian's redis-server and
``redis-cli --cluster create``, so slots, hash tags and redirects are the real
thing. Tests share it and stay apart by index name.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import redis
from conftest import clustered, index_factory
from langchain_core.embeddings import DeterministicFakeEmbedding
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.types import VectorStoreQuery
from redis.cluster import RedisCluster

from langchain_lshrs import LSHRSVectorStore as LangChainStore
from llama_index.vector_stores.lshrs import LSHRSVectorStore as LlamaIndexStore
from lshrs import LSHRS, MemoryStore, PostgresStore, SQLiteStore

N = 3_000  # above LSHRS' exact_below, so queries read buckets from every shard and rank by LSH


def shard_keys(client: RedisCluster, pattern: str) -> dict[str, int]:
    """Keys matching `pattern` on each primary, by node name (a SCAN run on that node alone)."""
    return {
        node.name: sum(1 for _ in node.redis_connection.scan_iter(match=pattern, count=1000))
        for node in client.get_primaries()
    }


def ranked(hits_per_query) -> list[list[int]]:
    return [[h.id for h in hits] for hits in hits_per_query]


@pytest.fixture
def make_cluster_index(cluster_client: RedisCluster, name: str) -> Iterator:
    """Build LSHRS instances on the cluster; their keys are removed after the test."""
    yield from index_factory(cluster_client, name)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request, tmp_path: Path, name: str):
    if request.param == "memory":
        return MemoryStore()
    if request.param == "sqlite":
        return SQLiteStore(tmp_path / "docs.sqlite3", table=name)
    return PostgresStore(request.getfixturevalue("postgres_dsn"), table=name)


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    """N vectors and 20 queries near the first 20 of them."""
    vectors = clustered(N, dim=32, clusters=20)
    return vectors, vectors[:20] + 0.05


# -- connecting --------------------------------------------------------------------------


def test_a_url_to_a_cluster_node_gives_a_cluster_client(redis_cluster_url, redis_url, name, monkeypatch):
    """redis+cluster:// says it; a plain redis:// URL (or REDIS_URL) to a cluster node is detected."""
    tagged_url = redis_cluster_url.replace("redis://", "redis+cluster://")
    plain = LSHRS(redis_url=redis_cluster_url, name=name, store=MemoryStore())
    tagged = LSHRS(redis_url=tagged_url, name=name, store=MemoryStore())
    monkeypatch.setenv("REDIS_URL", redis_cluster_url)
    from_env = LSHRS(name=name, store=MemoryStore())
    standalone = LSHRS(redis_url=redis_url, name=name, store=MemoryStore())
    try:
        assert all(isinstance(lsh.redis, RedisCluster) for lsh in (plain, tagged, from_env))
        assert not isinstance(standalone.redis, RedisCluster)
        plain.ingest(vectors=clustered(300, dim=16), ids=np.arange(300))
        reopened = LSHRS(redis_url=tagged_url, name=name, store=MemoryStore())  # attaches: parameters read back
        assert reopened.params == plain.params and reopened.count() == 300
        reopened.close()
    finally:
        plain.clear()
        for lsh in (plain, tagged, from_env, standalone):
            lsh.close()


# -- the verbs ---------------------------------------------------------------------------


def test_every_verb_on_the_cluster(make_cluster_index, cluster_client, store, data, name):
    vectors, queries = data
    lsh = make_cluster_index(store=store)
    ids = lsh.ingest(vectors=vectors, texts=[f"doc {i}" for i in range(N)], metadata=[{"g": i % 4} for i in range(N)])
    assert lsh.count() == N and store.count() == N
    hits = lsh.query(queries[0], top_k=5)
    assert len(hits) == 5 and hits[0].id == ids[0] and hits[0].text == "doc 0" and hits[0].metadata == {"g": 0}
    many = lsh.query_many(queries, top_k=5)
    assert [row[0].id for row in many] == ids[:20].tolist() and ranked(many)[0] == ranked([hits])[0]
    assert lsh.get(ids[[3, 1]]).texts == ["doc 3", "doc 1"]
    assert lsh.find({"g": 2}).tolist() == ids[2::4].tolist()

    assert lsh.delete(ids[:10]) == 10 and lsh.count() == N - 10 and store.count() == N - 10
    assert ids[0] not in {h.id for h in lsh.query(queries[0], top_k=20)}
    assert lsh.verify()["ok"]
    stats = lsh.stats()  # reads every bucket: a SCAN over all three shards
    entry = lsh.buckets.layout.entry_bytes  # an id, and the ranking code where the family keeps one
    assert stats["count"] == N - 10 and stats["bucket_payload_bytes"] == (N - 10) * lsh.params["num_tables"] * entry

    before = lsh.query_many(queries, top_k=5)
    assert lsh.index(rebuild=True) == N - 10 and lsh.count() == N - 10
    assert lsh.query_many(queries, top_k=5) == before
    assert lsh.index() == 0  # checkpoint reached: nothing new to index
    assert lsh.clear() > 0 and set(shard_keys(cluster_client, f"lshrs:{name}:*").values()) == {0}


async def test_async_verbs_on_the_cluster(make_cluster_index, store, data):
    """The async twin of a RedisCluster is a redis.asyncio.RedisCluster; results match the sync verbs."""
    vectors, queries = data
    lsh = make_cluster_index(store=store)
    ids = await lsh.aingest(vectors=vectors, texts=[f"doc {i}" for i in range(N)])
    assert lsh.count() == N
    sync_hits = lsh.query_many(queries, top_k=5)
    assert await lsh.aquery_many(queries, top_k=5) == sync_hits
    assert ranked([await lsh.aquery(queries[2], top_k=5)]) == ranked([sync_hits[2]])
    assert (await lsh.aget(ids[[4]])).texts == ["doc 4"]
    assert await lsh.adelete(ids[:10]) == 10 and lsh.count() == N - 10
    assert ids[0] not in {h.id for h in await lsh.aquery(queries[0], top_k=20)}
    await lsh.aclose()


def test_the_cluster_answers_like_a_standalone_redis(make_cluster_index, make_index):
    """Same data, same seed: the same buckets, so the same hits, reranked or not."""
    data = clustered(5_050)
    vectors, queries = data[:5_000], data[5_000:]
    on_cluster, alone = make_cluster_index(seed=7), make_index(seed=7)
    for lsh in (on_cluster, alone):
        lsh.ingest(vectors=vectors, ids=np.arange(5_000))
    assert on_cluster.query_many(queries, top_k=10) == alone.query_many(queries, top_k=10)
    assert on_cluster.query_many(queries, top_k=10, rerank=False) == alone.query_many(queries, top_k=10, rerank=False)
    keep = ("count", "buckets", "bucket_size", "bucket_payload_bytes")
    assert {k: on_cluster.stats()[k] for k in keep} == {k: alone.stats()[k] for k in keep}


def test_a_reshard_under_a_live_client(redis_cluster, make_cluster_index, data):
    """Slots move, keys included, while the client's slot map goes stale: MOVED replies reroute the scripts."""
    vectors, queries = data
    lsh = make_cluster_index()
    ids = lsh.ingest(vectors=vectors)
    before = lsh.query_many(queries, top_k=5)
    source, target = redis_cluster.ports[:2]
    redis_cluster.move_slots(2_000, source, target)
    old_owner = redis.Redis(host="127.0.0.1", port=source)
    old_owner.config_resetstat()
    try:
        assert lsh.query_many(queries, top_k=5) == before
        assert old_owner.info("errorstats").get("errorstat_MOVED", {}).get("count", 0) > 0  # the map was stale
        assert lsh.delete(ids[:10]) == 10 and lsh.count() == N - 10
        lsh.ingest(vectors=vectors[:10], ids=ids[:10])
        assert lsh.query_many(queries, top_k=5) == before and lsh.verify()["ok"]
    finally:
        old_owner.close()
        redis_cluster.move_slots(2_000, target, source)


# -- keys on the shards ------------------------------------------------------------------


def test_clear_removes_this_index_on_every_shard_and_nothing_else(make_cluster_index, cluster_client, data, name):
    vectors, queries = data
    mine, other = make_cluster_index(), make_cluster_index(name=name + "-other")
    mine.ingest(vectors=vectors)
    other.ingest(vectors=vectors)
    mine_keys = shard_keys(cluster_client, f"lshrs:{name}:*")
    other_keys = shard_keys(cluster_client, f"lshrs:{name}-other:*")
    assert min(mine_keys.values()) > 0

    assert mine.clear() == sum(mine_keys.values())
    assert set(shard_keys(cluster_client, f"lshrs:{name}:*").values()) == {0}
    assert shard_keys(cluster_client, f"lshrs:{name}-other:*") == other_keys
    assert other.count() == N and len(other.query(queries[0], top_k=5)) == 5


def test_buckets_spread_over_the_shards(make_cluster_index, cluster_client, name):
    """The hash tag is the bucket group (table, code >> group_bits): thousands of tags, so every shard gets a share."""
    lsh = make_cluster_index()
    lsh.ingest(vectors=clustered(5_000), ids=np.arange(5_000))
    per_shard = shard_keys(cluster_client, f"lshrs:{name}:b:*")
    total = sum(per_shard.values())
    assert len(per_shard) == 3 and all(keys > 0.15 * total for keys in per_shard.values()), per_shard


# -- round trips -------------------------------------------------------------------------


def eval_calls(cluster_client: RedisCluster) -> dict[str, int]:
    """EVAL commands each primary ran since its last CONFIG RESETSTAT (INFO commandstats)."""
    stats = {node.name: node.redis_connection.info("commandstats") for node in cluster_client.get_primaries()}
    return {node: int(s.get("cmdstat_eval", {}).get("calls", 0)) for node, s in stats.items()}


@pytest.mark.parametrize("batch", [1, 20])
@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_query_is_one_round_trip_per_shard(make_cluster_index, cluster_client, data, sends, mode, batch):
    """Counted on both sides: the client's round trips per node, and the scripts each node ran.

    Each node gets exactly one round trip (see `sends`), and INFO
    commandstats shows it ran many bucket-group scripts within it, never
    more than the buckets probed. A MemoryStore keeps the rerank off the
    network, so every trip counted is the bucket read.
    """
    vectors, queries = data
    lsh = make_cluster_index(family="hyperplanes")  # many buckets per query, so every shard gets several
    lsh.ingest(vectors=vectors, ids=np.arange(N))
    run = lsh.query_many if mode == "sync" else lsh.aquery_many
    for warm in (True, False):  # the first run opens a connection to every node
        if not warm:
            for node in cluster_client.get_primaries():
                node.redis_connection.config_resetstat()
            sends.clear()
        result = run(queries[:batch], top_k=10)
        assert len(await result if mode == "async" else result) == batch
    trips = dict(sends)
    assert trips == {node.name: 1 for node in cluster_client.get_primaries()}
    evals = eval_calls(cluster_client)
    probed = batch * lsh.params["num_tables"] * lsh.num_probes
    assert all(calls > 1 for calls in evals.values()) and sum(evals.values()) <= probed, evals
    await lsh.aclose()


# -- the integrations --------------------------------------------------------------------


async def test_langchain_store_on_the_cluster(make_cluster_index, tmp_path, name):
    lsh = make_cluster_index(id_bytes=8, store=SQLiteStore(tmp_path / "docs.sqlite3", table=name))
    vs = LangChainStore(DeterministicFakeEmbedding(size=6), lsh=lsh)
    texts = ["foo", "bar", "baz", "qux", "quux"]
    assert vs.add_texts(texts, [{"n": i} for i in range(5)], ids=list("abcde")) == list("abcde")
    assert [d.id for d in vs.similarity_search("baz", k=1)] == ["c"]
    assert len(vs.similarity_search("foo", k=5)) == 5
    assert vs.delete(["a"]) is True and vs.get_by_ids(["a"]) == [] and lsh.count() == 4
    assert await vs.aadd_texts(["corge"], ids=["f"]) == ["f"]
    found = await vs.asimilarity_search("corge", k=1)
    assert [(d.id, d.page_content) for d in found] == [("f", "corge")]
    await lsh.aclose()


def node(i: int, doc: str) -> TextNode:
    embedding = np.full(8, 0.05)
    embedding[i] = 1.0
    source = {NodeRelationship.SOURCE: RelatedNodeInfo(node_id=doc)}
    return TextNode(id_=f"node-{i}", text=f"text {i}", embedding=embedding.tolist(), relationships=source)


async def test_llamaindex_store_on_the_cluster(make_cluster_index, postgres_dsn, name):
    lsh = make_cluster_index(id_bytes=8, store=PostgresStore(postgres_dsn, table=name))
    vs = LlamaIndexStore(lsh=lsh)
    nodes = [node(i, f"doc-{i % 2}") for i in range(6)]
    assert vs.add(nodes) == [n.node_id for n in nodes]
    ask = VectorStoreQuery(query_embedding=nodes[3].embedding, similarity_top_k=6)
    result = vs.query(ask)
    assert result.ids[0] == "node-3" and len(result.ids) == 6 and result.nodes[0].get_content() == "text 3"
    vs.delete("doc-1")  # nodes 1, 3 and 5
    assert sorted(vs.query(ask).ids) == ["node-0", "node-2", "node-4"]
    await vs.async_add([node(7, "doc-2")])
    found = await vs.aquery(VectorStoreQuery(query_embedding=node(7, "x").embedding, similarity_top_k=1))
    assert found.ids == ["node-7"]
    await lsh.aclose()
