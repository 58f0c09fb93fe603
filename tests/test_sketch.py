"""The sketch stage: what a top_p query reranks, how the per-process cache learns and forgets."""

import asyncio

import numpy as np
import pytest
from conftest import clustered, exact_top_k

from lshrs import LSHRS, MemoryStore
from lshrs.sketch import DIRECT_IDS, SketchCache


class CountingStore(MemoryStore):
    """A real MemoryStore that records how many vectors each candidate fetch asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.fetched: list[int] = []

    def get(self, ids, *, payload=True):
        if not payload:
            self.fetched.append(len(ids))
        return super().get(ids, payload=payload)


def recall(hits, truth) -> float:
    return float(np.mean([len({h.id for h in row} & set(t.tolist())) / len(t) for row, t in zip(hits, truth)]))


# -- the cache on its own ---------------------------------------------------


def test_cache_finds_small_and_large_ids_and_only_those_added():
    rng = np.random.default_rng(0)
    cache = SketchCache(32)
    small = np.array([0, 5, 1_000_000], np.int64)
    large = np.array([DIRECT_IDS, 2**62 + 7, 2**63 - 1], np.int64)
    ids = np.concatenate([small, large])
    vectors = rng.standard_normal((6, 32)).astype(np.float32)
    assert cache.add(ids, vectors) == 6
    assert cache.add(ids, vectors) == 0  # already known
    known, rows = cache.lookup(np.array([5, 6, 2**62 + 7, 2**62 + 8, 0], np.int64))
    assert known.tolist() == [True, False, True, False, True]
    np.testing.assert_array_equal(rows, cache.sketch(vectors[[1, 4, 0]]))


def test_cache_keeps_large_ids_across_merges_of_its_runs():
    rng = np.random.default_rng(1)
    cache = SketchCache(16)
    ids = rng.choice(2**62, 20_000, replace=False).astype(np.int64) + DIRECT_IDS
    vectors = rng.standard_normal((20_000, 16)).astype(np.float32)
    for lo in range(0, 20_000, 1_500):  # enough inserts to merge the recent run into the large one
        cache.add(ids[lo : lo + 1_500], vectors[lo : lo + 1_500])
    known, rows = cache.lookup(ids[::-1])
    assert known.all() and len(cache) == 20_000
    np.testing.assert_array_equal(rows, cache.sketch(vectors[::-1]))


def test_sparse_small_ids_do_not_blow_up_the_id_indexed_array():
    from lshrs.sketch import _DIRECT_MIN

    cache = SketchCache(8)
    ids = np.array([3, _DIRECT_MIN * 10, DIRECT_IDS - 1], np.int64)  # far apart, all below DIRECT_IDS
    vectors = np.random.default_rng(6).standard_normal((3, 8)).astype(np.float32)
    assert cache.add(ids, vectors) == 3
    assert len(cache._direct) <= _DIRECT_MIN  # the two far ids went to the sorted runs
    known, rows = cache.lookup(ids[::-1])
    assert known.all()
    np.testing.assert_array_equal(rows, cache.sketch(vectors[::-1]))


def test_cache_stops_at_its_capacity():
    cache = SketchCache(8, capacity=100)
    vectors = np.random.default_rng(2).standard_normal((300, 8)).astype(np.float32)
    assert cache.add(np.arange(300), vectors) == 100
    assert cache.add(np.arange(300, 400), vectors[:100]) == 0
    assert len(cache) == 100


def test_cache_forgets_everything_when_the_generation_moves():
    cache = SketchCache(8)
    cache.sync(b"7")
    cache.add(np.arange(10), np.ones((10, 8), np.float32))
    cache.sync(b"7")
    assert len(cache) == 10
    cache.sync(b"8")
    assert len(cache) == 0 and not cache.lookup(np.arange(10))[0].any()


def test_sketch_similarity_orders_neighbours_before_far_vectors():
    rng = np.random.default_rng(3)
    cache = SketchCache(64)
    base = rng.standard_normal(64).astype(np.float32)
    near = base + 0.2 * rng.standard_normal((50, 64)).astype(np.float32)
    far = rng.standard_normal((50, 64)).astype(np.float32)
    query = cache.sketch(base[None])
    assert cache.similarity(query, cache.sketch(base[None]))[0] == 1.0
    assert cache.similarity(query, cache.sketch(near)).min() > cache.similarity(query, cache.sketch(far)).max()


def test_cache_rejects_widths_that_are_not_whole_words():
    with pytest.raises(ValueError, match="multiple of 64"):
        SketchCache(8, bits=100)


# -- the sketch stage in queries (real Redis) --------------------------------


def test_warm_top_p_query_reranks_its_share_and_keeps_recall(make_index):
    data = clustered(20_200, dim=64, clusters=400, noise=0.6)
    vectors, queries = data[:20_000], data[20_000:]
    store = CountingStore()
    lsh = make_index(store=store, num_tables=16, num_bits=10, num_probes=16)
    ids = lsh.ingest(vectors=vectors)
    truth = ids[exact_top_k(queries, vectors, 10)]
    candidates = lsh.candidate_counts(queries)
    every = recall(lsh.query_many(queries, top_k=10), truth)
    assert lsh.warm() == 20_000 and lsh.warm() == 0
    store.fetched.clear()
    hits = [lsh.query(q, top_k=10, top_p=0.05) for q in queries]
    limits = np.maximum(np.ceil(candidates * 0.05), 10)
    assert store.fetched == limits.astype(int).tolist()
    assert recall(hits, truth) >= every - 0.05
    for row, q in zip(hits, queries):  # scores stay exact cosines
        got = np.array([h.score for h in row])
        stored = lsh.store.get(np.array([h.id for h in row]), payload=False).vectors
        expected = stored @ q / np.linalg.norm(stored, axis=1) / np.linalg.norm(q)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_sketches_rank_better_than_collision_counts(make_index):
    data = clustered(20_200, dim=64, clusters=400, noise=1.0, seed=4)  # neighbours far enough to be mixed up
    vectors, queries = data[:20_000], data[20_000:]
    lsh = make_index(num_tables=16, num_bits=10, num_probes=16)
    ids = lsh.ingest(vectors=vectors)
    truth = ids[exact_top_k(queries, vectors, 10)]
    plain = make_index(name=lsh.name, store=lsh.store, sketch_cache=0)
    by_count = recall(plain.query_many(queries, top_k=10, top_p=0.02), truth)
    lsh.warm()
    by_sketch = recall(lsh.query_many(queries, top_k=10, top_p=0.02), truth)
    assert plain.sketches is None
    assert by_sketch > by_count + 0.015, (by_sketch, by_count)  # measured: 0.968 against 0.942


def test_cold_process_learns_from_what_it_reranks(make_index):
    vectors = clustered(5_000, dim=32, clusters=50)
    store = CountingStore()
    lsh = make_index(store=store, num_tables=8, num_bits=8, num_probes=4)
    lsh.ingest(vectors=vectors)
    reader = make_index(name=lsh.name, store=store)  # another process: its cache starts empty
    found = int(reader.candidate_counts(vectors[:1])[0])
    limit = max(int(np.ceil(found * 0.1)), 10)
    store.fetched.clear()
    reader.query(vectors[0], top_k=10, top_p=0.1)
    assert store.fetched == [limit] and len(reader.sketches) == limit
    reader.query(vectors[0], top_k=10, top_p=0.1)  # the known share by sketch, plus as many unknown by count
    assert limit < store.fetched[-1] <= 2 * limit


def test_any_process_replacing_or_deleting_a_vector_empties_every_cache(make_index):
    vectors = clustered(3_000, dim=32)
    lsh = make_index(num_tables=8, num_bits=8)
    ids = lsh.ingest(vectors=vectors)
    other = make_index(name=lsh.name, store=lsh.store)
    lsh.warm()
    lsh.query(vectors[0], top_p=0.2)
    assert len(lsh.sketches) == 3_000
    other.ingest(vectors=clustered(10, dim=32, seed=9))  # new ids: nothing stored changed
    lsh.query(vectors[0], top_p=0.2)
    assert len(lsh.sketches) >= 3_000  # kept
    before = lsh.buckets.generation()
    other.ingest(ids=ids[:1], vectors=-vectors[:1])  # replaced
    assert lsh.buckets.generation() != before
    lsh.query(vectors[5], top_p=0.2)
    assert len(lsh.sketches) < 3_000
    lsh.warm()
    before = lsh.buckets.generation()
    other.delete(ids[1:2])
    assert lsh.buckets.generation() != before
    hits = lsh.query(vectors[1], top_k=5, top_p=0.2)
    assert ids[1] not in [h.id for h in hits]


def test_rebuilt_index_gets_a_new_generation(make_index):
    lsh = make_index(num_tables=4, num_bits=6)
    lsh.ingest(vectors=clustered(500, dim=16))
    first = lsh.buckets.generation()
    lsh.index(rebuild=True)
    assert first and lsh.buckets.generation() not in (b"", first)


def test_warm_attaches_to_an_index_made_after_this_instance(make_index):
    early = make_index()  # no index and an empty store yet: no hasher, no cache
    assert early.sketches is None and early.warm() == 0
    writer = make_index(store=early.store, num_tables=4, num_bits=6)
    writer.ingest(vectors=clustered(500, dim=16))
    assert early.warm() == 500 and len(early.sketches) == 500


def test_without_top_p_no_sketch_is_computed(make_index):
    lsh = make_index(num_tables=4, num_bits=6)
    vectors = clustered(3_000, dim=16)
    lsh.ingest(vectors=vectors)
    lsh.query(vectors[0], top_k=5)
    assert len(lsh.sketches) == 0


def test_async_top_p_query_learns_sketches_too(make_index):
    vectors = clustered(4_000, dim=32)
    lsh = make_index(num_tables=8, num_bits=8)
    lsh.ingest(vectors=vectors)

    async def ask():
        try:
            return await lsh.aquery(vectors[3], top_k=5, top_p=0.1)
        finally:
            await lsh.aclose()

    hits = asyncio.run(ask())
    assert hits[0].score == pytest.approx(1.0, abs=1e-5) and len(lsh.sketches) > 0


def test_cluster_reads_the_generation_with_the_buckets(cluster_client, name):
    lsh = LSHRS(name=name, redis=cluster_client, store=MemoryStore(), num_tables=4, num_bits=6)
    try:
        vectors = clustered(3_000, dim=16)
        ids = lsh.ingest(vectors=vectors)
        lsh.query(vectors[0], top_p=0.3)
        assert lsh.sketches.generation == lsh.buckets.generation() != b""
        lsh.delete(ids[:1])
        lsh.query(vectors[0], top_p=0.3)
        assert lsh.sketches.generation == lsh.buckets.generation()
    finally:
        lsh.clear()


@pytest.mark.parametrize("value, error", [(-1, ValueError), (1.5, TypeError), (True, TypeError)])
def test_bad_sketch_cache_sizes_are_refused(redis_client, name, value, error):
    with pytest.raises(error, match="sketch_cache"):
        LSHRS(name=name, redis=redis_client, store=MemoryStore(), sketch_cache=value)
