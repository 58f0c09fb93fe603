"""Centroid indexes end to end: training, ranking codes in the buckets, every verb, real Redis and stores."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import redis
from conftest import clustered, exact_top_k, index_factory

from lshrs import LSHRS, MemoryStore
from lshrs.centroids import TRAIN_MIN_ROWS, Centroids
from lshrs.codes import PREFILTER

DIM = 32


def recall(hits, truth) -> float:
    return float(np.mean([len({h.id for h in row} & set(t.tolist())) / len(t) for row, t in zip(hits, truth)]))


class CountingStore(MemoryStore):
    """A MemoryStore that records how many vectors each payload-free read asked for (what a query reranks)."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[int] = []

    def get(self, ids, *, payload=True):
        if not payload:
            self.reads.append(len(ids))
        return super().get(ids, payload=payload)


def built(make, vectors, **options):
    """A centroid index of `vectors` (ids = row numbers) in a MemoryStore, trained and built by index()."""
    store = MemoryStore()
    store.put(np.arange(len(vectors)), vectors)
    lsh = make(store=store, **options)
    lsh.index()
    return lsh


@pytest.fixture
def corpus():
    vectors = clustered(6_000, dim=DIM, clusters=60, seed=1)
    queries = clustered(6_040, dim=DIM, clusters=60, seed=1)[6_000:] + 0.01
    return vectors, queries, exact_top_k(queries, vectors, 10)


def test_index_trains_on_the_store_and_finds_the_neighbours(make_index, store, corpus, redis_client, name):
    vectors, queries, truth = corpus
    store.put(np.arange(len(vectors)), vectors)
    lsh = make_index(store=store, family="centroids", exact_below=0)
    assert lsh.hasher is not None and not lsh.hasher.trained  # the store is read only by index()
    assert lsh.index() == len(vectors)
    family = lsh.hasher
    assert isinstance(family, Centroids) and family.nlist >= 16 and family.trained_rows == len(vectors)
    assert lsh.count() == len(vectors) and lsh.verify()["ok"]
    assert redis_client.hget(f"lshrs:{name}:meta", "format") == b"3"  # entries carry codes: older lshrs refuse it
    hits = lsh.query_many(queries, top_k=10)
    assert recall(hits, truth) >= 0.95
    best = hits[0][0]
    v, q = vectors[best.id], queries[0]
    assert best.score == pytest.approx(float(v @ q / np.linalg.norm(v) / np.linalg.norm(q)), abs=1e-5)


def test_a_query_reranks_only_its_depth_of_code_ranked_candidates(make_index, corpus):
    vectors, queries, truth = corpus
    store = CountingStore()
    store.put(np.arange(len(vectors)), vectors)
    lsh = make_index(store=store, family="centroids", exact_below=0, rerank_depth=40)
    lsh.index()
    store.reads.clear()
    shallow = recall([lsh.query(q, top_k=10) for q in queries], truth)
    assert max(store.reads) == 40
    assert lsh.candidate_counts(queries).min() > 100  # so the depth, not the probes, bounded the reads
    deeper = LSHRS(redis=lsh.redis, name=lsh.name, store=store, exact_below=0, rerank_depth=400)
    store.reads.clear()
    deep = recall([deeper.query(q, top_k=10) for q in queries], truth)
    assert max(store.reads) <= 400 and deep >= 0.95 and deep > shallow  # 32-d: 4-byte codes rank coarsely
    store.reads.clear()
    lsh.query(queries[0], top_k=10, top_p=0.5)
    assert store.reads[0] >= 0.5 * lsh.candidate_counts(queries[:1])[0] - 1


def test_a_query_without_payload_skips_the_payload_read(make_index, store, corpus):
    """payload=False: the same ids and exact scores, no text or metadata, and no store read for them."""
    vectors, queries, _ = corpus
    store.put(np.arange(len(vectors)), vectors, [f"doc {i}" for i in range(len(vectors))],
              [{"n": i} for i in range(len(vectors))])  # fmt: skip
    lsh = make_index(store=store, family="centroids", exact_below=0)
    lsh.index()
    asked: list[bool] = []
    read = store.get
    store.get = lambda ids, *, payload=True: asked.append(payload) or read(ids, payload=payload)
    if hasattr(store, "aget"):  # the async verbs read through it where the store has one
        aread = store.aget

        async def aget(ids, *, payload=True):
            asked.append(payload)
            return await aread(ids, payload=payload)

        store.aget = aget
    full = lsh.query_many(queries[:5], top_k=10)
    assert asked == [False, True] and full[0][0].text == f"doc {full[0][0].id}"
    asked.clear()
    bare = lsh.query_many(queries[:5], top_k=10, payload=False)
    assert asked == [False]
    assert [[(h.id, h.score) for h in row] for row in bare] == [[(h.id, h.score) for h in row] for row in full]
    assert all(h.text is None and h.metadata is None for row in bare for h in row)
    asked.clear()
    one = lsh.query(queries[0], top_k=10, payload=False)
    assert asked == [False] and [h.id for h in one] == [h.id for h in full[0]]
    asked.clear()
    awaited = asyncio.run(lsh.aquery_many(queries[:5], top_k=10, payload=False))
    assert asked == [False] and [[h.id for h in row] for row in awaited] == [[h.id for h in row] for row in bare]
    with pytest.raises(TypeError, match="payload"):
        lsh.query(queries[0], payload="no")


def test_a_batch_ranks_each_query_as_it_would_alone(make_index, corpus):
    """query_many scores each query's run of candidates on its own; past PREFILTER candidates the cut matters."""
    vectors, queries, _ = corpus
    lsh = built(make_index, vectors, family="centroids", exact_below=0)
    assert lsh.candidate_counts(queries, num_probes=120).min() > PREFILTER
    batch = lsh.query_many(queries, top_k=10, num_probes=120)
    alone = [lsh.query(q, top_k=10, num_probes=120) for q in queries]
    assert [[h.id for h in row] for row in batch] == [[h.id for h in row] for row in alone]


def test_a_small_index_stays_exact_then_trains_itself(make_index):
    vectors = clustered(TRAIN_MIN_ROWS + 100, dim=DIM, clusters=10, seed=2)
    lsh = make_index(family="centroids", exact_below=0)
    first = TRAIN_MIN_ROWS // 2
    lsh.ingest(vectors=vectors[:first])
    assert not lsh.hasher.trained and lsh.stats()["buckets"] == 0  # no buckets yet: the store is the index
    assert lsh.count() == first
    hits = lsh.query(vectors[3], top_k=4)
    assert len(hits) == 4 and hits[0].id == 4  # generated ids start at 1; exact answers meanwhile
    assert lsh.delete([4]) == 1 and lsh.query(vectors[3], top_k=1)[0].id != 4
    lsh.ingest(vectors=vectors[first:])  # crosses the threshold: trains and places every stored row
    assert lsh.hasher.trained and lsh.count() == len(vectors) - 1
    assert lsh.verify()["ok"]
    assert lsh.query(vectors[150], top_k=1)[0].id == 151


def test_replace_and_delete_move_entries_and_codes(make_index, corpus):
    vectors, _, _ = corpus
    lsh = built(make_index, vectors, family="centroids", exact_below=0)
    moved = vectors[:50][::-1].copy()  # rows 0..49 take each other's vectors: new buckets and codes
    lsh.ingest(vectors=moved, ids=np.arange(50))
    assert lsh.verify()["ok"] and lsh.count() == len(vectors)
    for i in (0, 17, 49):
        assert lsh.query(moved[i], top_k=1)[0].id == i
    assert lsh.delete(np.arange(100, 200)) == 100
    assert lsh.verify()["ok"] and lsh.count() == len(vectors) - 100
    deleted = set(range(100, 200))
    for q in vectors[100:120]:
        assert not deleted & {h.id for h in lsh.query(q, top_k=10, rerank=False)}
        assert not deleted & {h.id for h in lsh.query(q, top_k=10)}


def test_repair_restores_lost_entries_with_their_codes(make_index, corpus, redis_client, name):
    vectors, queries, truth = corpus
    lsh = built(make_index, vectors, family="centroids", exact_below=0)
    before = lsh.query_many(queries, top_k=10)
    lost = list(redis_client.scan_iter(match=f"lshrs:{name}:b:*", count=1000))[:5]
    redis_client.delete(*lost)
    report = lsh.verify()
    assert not report["ok"] and report["missing_entries"] > 0
    lsh.repair()
    assert lsh.verify()["ok"]
    assert [[h.id for h in row] for row in lsh.query_many(queries, top_k=10)] == [[h.id for h in row] for row in before]


def test_another_process_attaches_with_the_same_centroids(make_index, corpus, redis_client, name):
    vectors, queries, _ = corpus
    lsh = built(make_index, vectors, family="centroids", exact_below=0)
    other = LSHRS(redis=redis_client, name=name, store=lsh.store, exact_below=0)
    assert isinstance(other.hasher, Centroids)
    assert np.array_equal(other.hasher.centroids, lsh.hasher.centroids)
    assert np.array_equal(other.hasher.codes(vectors), lsh.hasher.codes(vectors))
    assert other.query_many(queries, top_k=5) == lsh.query_many(queries, top_k=5)
    with pytest.raises(ValueError, match="family='centroids', not 'hyperplanes'"):
        LSHRS(redis=redis_client, name=name, store=lsh.store, family="hyperplanes")


def test_the_seed_chooses_the_centroids_and_repeats_them(make_index, corpus, name):
    """`seed=` draws the training sample and the first centroids: it was ignored, and every index trained with 0."""
    vectors, _, _ = corpus
    trained = {}
    for label, seed in [("a", 3), ("b", 3), ("c", 4)]:
        lsh = built(make_index, vectors, name=f"{name}-{label}", family="centroids", seed=seed)
        assert lsh.params["seed"] == seed
        trained[label] = lsh.hasher.centroids
    assert np.array_equal(trained["a"], trained["b"])
    assert not np.array_equal(trained["a"], trained["c"])


def test_bad_family_arguments_are_refused_before_any_write(redis_client, name):
    with pytest.raises(ValueError, match="family: expected one of"):
        LSHRS(redis=redis_client, name=name, store=MemoryStore(), family="kmeans")
    with pytest.raises(ValueError, match="num_tables: parameters of the hyperplanes family"):
        LSHRS(redis=redis_client, name=name, store=MemoryStore(), family="centroids", num_tables=8)
    with pytest.raises(ValueError, match="nlist: expected >= 1"):
        LSHRS(redis=redis_client, name=name, store=MemoryStore(), family="centroids", nlist=0)
    with pytest.raises(ValueError, match="rerank_depth: expected >= 1"):
        LSHRS(redis=redis_client, name=name, store=MemoryStore(), rerank_depth=0)
    assert redis_client.exists(f"lshrs:{name}:meta") == 0


def test_retrain_draws_new_centroids_and_keeps_every_row(make_index, corpus):
    vectors, queries, truth = corpus
    store = MemoryStore()
    store.put(np.arange(2_000), vectors[:2_000])
    lsh = make_index(store=store, family="centroids", exact_below=0)
    lsh.index()
    small = lsh.hasher.nlist
    lsh.ingest(vectors=vectors[2_000:], ids=np.arange(2_000, len(vectors)))
    assert lsh.count() == len(vectors) and lsh.hasher.trained_rows == 2_000
    assert lsh.index(retrain=True) == len(vectors)
    assert lsh.hasher.trained_rows == len(vectors) and lsh.hasher.nlist > small
    assert lsh.verify()["ok"] and lsh.count() == len(vectors)
    assert recall(lsh.query_many(queries, top_k=10), truth) >= 0.95


def test_filters_and_index_from_arrays(make_index, corpus):
    vectors, queries, _ = corpus
    store = MemoryStore()
    meta = [{"even": i % 2 == 0} for i in range(len(vectors))]
    store.put(np.arange(len(vectors)), vectors, None, meta)
    lsh = make_index(store=store, family="centroids", exact_below=0)
    assert lsh.index(np.arange(len(vectors)), vectors) == len(vectors)  # trains from the store first
    assert lsh.verify()["ok"]
    hits = lsh.query(queries[0], top_k=10, filter={"even": True})
    assert len(hits) == 10 and all(h.id % 2 == 0 for h in hits)


def test_tune_measures_probes_and_depth_on_the_index_and_apply_saves_them(make_index, corpus, redis_client, name):
    vectors, queries, truth = corpus
    lsh = built(make_index, vectors, family="centroids", exact_below=0)
    nlist = lsh.hasher.nlist
    deep = len(vectors)
    result = lsh.tune(num_queries=100, grid={"num_probes": [1, 2, nlist], "rerank_depth": [10, 50, deep]})
    assert [(r.num_probes, r.rerank_depth) for r in result.rows] == [
        (p, d) for p in (1, 2, nlist) for d in (10, 50, deep)
    ]
    everything = [r for r in result.rows if r.num_probes == nlist]
    assert all(r.candidates == len(vectors) - 1 for r in everything)  # every entry but the query's own
    assert everything[-1].recall == 1.0 and everything[-1].reranked == len(vectors) - 1  # an exact scan
    assert everything[0].recall < everything[-1].recall  # depth 10: the codes alone rank the top 10
    assert result.met and result.chosen in result.rows and result.chosen.recall >= 0.95
    assert not result.applied and lsh.num_probes == lsh.hasher.default_probes  # nothing saved without apply
    assert "<-" in result.table() and result.summary().startswith("chosen: num_probes=")

    applied = lsh.tune(queries, num_queries=40, grid={"num_probes": [nlist], "rerank_depth": [10, 50]}, apply=True)
    assert applied.applied and applied.num_queries == 40
    setting = applied.chosen
    assert (lsh.num_probes, lsh.rerank_depth) == (setting.num_probes, setting.rerank_depth)
    other = make_index(store=lsh.store)  # another process reads the saved setting on attach
    assert (other.num_probes, other.rerank_depth) == (setting.num_probes, setting.rerank_depth)
    assert recall(other.query_many(queries, top_k=10), truth) >= 0.95
    assert make_index(num_probes=3, rerank_depth=7).rerank_depth == 7  # given arguments still win
    lsh.index(rebuild=True)
    assert make_index().rerank_depth == setting.rerank_depth  # kept by a rebuild


def test_tune_on_a_centroid_index_refuses_what_it_cannot_measure(make_index, corpus):
    vectors, _, _ = corpus
    with pytest.raises(ValueError, match="does not exist yet"):
        make_index().tune(vectors)  # nothing written
    small = make_index(family="centroids")
    small.ingest(vectors=vectors[:10])
    with pytest.raises(ValueError, match="not trained yet"):
        small.tune(vectors)
    small.clear()
    lsh = built(make_index, vectors, family="centroids")
    with pytest.raises(ValueError, match="a centroid index tunes num_probes, rerank_depth"):
        lsh.tune(grid={"num_bits": [8]})
    with pytest.raises(ValueError, match="rerank_depth"):
        lsh.tune(grid={"rerank_depth": [0]})
    before = (lsh.num_probes, lsh.rerank_depth)
    result = lsh.tune(num_queries=20, target_recall=1.0, grid={"num_probes": [1], "rerank_depth": [10]}, apply=True)
    assert not result.met and not result.applied and (lsh.num_probes, lsh.rerank_depth) == before


async def test_async_verbs_on_a_centroid_index(make_index, corpus):
    vectors, queries, truth = corpus
    lsh = make_index(family="centroids", exact_below=0)
    ids = await lsh.aingest(vectors=vectors)
    assert lsh.hasher.trained and lsh.count() == len(vectors)
    hits = await lsh.aquery_many(queries, top_k=10)
    assert hits == lsh.query_many(queries, top_k=10)
    assert await lsh.adelete(ids[:10]) == 10 and lsh.verify()["ok"]


def test_a_centroid_index_on_redis_cluster(cluster_client: redis.RedisCluster, corpus, name):
    vectors, queries, truth = corpus
    for make in index_factory(cluster_client, name):
        lsh = built(make, vectors, family="centroids", exact_below=0)
        assert lsh.verify()["ok"] and recall(lsh.query_many(queries, top_k=10), truth) >= 0.95
        lsh.ingest(vectors=vectors[:20][::-1].copy(), ids=np.arange(20))
        assert lsh.delete(np.arange(30, 40)) == 10 and lsh.verify()["ok"]
