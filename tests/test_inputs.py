"""Bad input raises a clear error and writes nothing."""

import numpy as np
import pytest


@pytest.fixture
def lsh(make_index):
    index = make_index()
    index.ingest(vectors=np.eye(8)[:4] + 0.1, ids=[1, 2, 3, 4], texts=list("abcd"))
    return index


def snapshot(lsh):
    return lsh.count(), lsh.store.count(), lsh.buckets.entry_count()


BAD_INGESTS = [
    (dict(vectors=np.ones((2, 9)), ids=[10, 11]), ValueError, r"expected shape \(n, 8\), got \(2, 9\)"),
    (dict(vectors=[[np.nan] * 8], ids=[10]), ValueError, "NaN or inf"),
    (dict(vectors=[[np.inf] + [1] * 7], ids=[10]), ValueError, "NaN or inf"),
    (dict(vectors=np.zeros((1, 8)), ids=[10]), ValueError, "all-zero"),
    (dict(vectors=np.ones((2, 8)), ids=[10, 10]), ValueError, "duplicate ids"),
    (dict(vectors=np.ones((2, 8)), ids=[10.5, 11]), TypeError, "expected integers"),
    (dict(vectors=np.ones((2, 8)), ids=["a", "b"]), TypeError, "expected integers"),
    (dict(vectors=np.ones((2, 8)), ids=[True, False]), TypeError, "expected integers"),
    (dict(vectors=np.ones((2, 8)), ids=[10]), ValueError, "ids: expected 2 items"),
    (dict(vectors=np.ones((2, 8)), ids=[10, 11], texts=["x"]), ValueError, "texts: expected 2 items"),
    (dict(vectors=np.ones((2, 8)), ids=[10, 11], metadata=[{}]), ValueError, "metadata: expected 2 items"),
    (dict(vectors=np.ones((1, 8)), ids=[10], metadata=["x"]), TypeError, "metadata: expected dict"),
    (dict(vectors=np.empty((0, 8)), ids=[]), ValueError, "empty batch"),
    (dict(vectors=[["a"] * 8], ids=[10]), TypeError, "numeric array"),
    (dict(), ValueError, "give texts, vectors"),
    (dict(vectors=np.ones((1, 8)), ids=[2**63]), ValueError, "64-bit"),
    # finite in float64, out of float32's range: said so, not called "NaN or inf" (issue 14)
    (dict(vectors=np.full((1, 8), 1e39), ids=[10]), ValueError, "beyond float32's range"),
]


@pytest.mark.parametrize("kwargs, exc, match", BAD_INGESTS)
def test_bad_ingest_changes_nothing(lsh, kwargs, exc, match):
    before = snapshot(lsh)
    with pytest.raises(exc, match=match):
        lsh.ingest(**kwargs)
    assert snapshot(lsh) == before


def test_one_bad_row_rejects_the_whole_batch(lsh):
    vectors = np.ones((100, 8))
    vectors[77] = 0
    before = snapshot(lsh)
    with pytest.raises(ValueError, match="rows \\[77\\]"):
        lsh.ingest(vectors=vectors, ids=np.arange(100, 200))
    assert snapshot(lsh) == before


def test_id_width_is_enforced(make_index, name):
    small = make_index()  # 4-byte ids by default
    with pytest.raises(ValueError, match=r"\[-2147483648, 2147483647\]"):
        small.ingest(vectors=np.ones((1, 4)), ids=[2**31])
    small.ingest(vectors=np.ones((1, 4)), ids=[np.int32(2**31 - 1)])
    assert small.query(np.ones(4), top_k=1)[0].id == 2**31 - 1
    wide = make_index(name=name + "w", id_bytes=8)
    wide.ingest(vectors=np.ones((3, 4)) + np.eye(3, 4), ids=[-(2**62), 2**40, 2**62])
    assert sorted(h.id for h in wide.query(np.ones(4), top_k=3, rerank=False)) == [-(2**62), 2**40, 2**62]


@pytest.mark.parametrize(
    "kwargs, exc",
    [
        (dict(top_k=0), ValueError),
        (dict(top_k=2.5), TypeError),
        (dict(top_p=0.0), ValueError),
        (dict(top_p=1.5), ValueError),
        (dict(top_p=float("nan")), ValueError),
        (dict(num_probes=0), ValueError),
    ],
)
def test_bad_query_arguments(lsh, kwargs, exc):
    with pytest.raises(exc):
        lsh.query(np.ones(8), **kwargs)


def test_bad_query_vectors(lsh):
    with pytest.raises(ValueError, match=r"expected shape \(n, 8\)"):
        lsh.query(np.ones(5))
    with pytest.raises(ValueError, match="all-zero"):
        lsh.query(np.zeros(8))
    with pytest.raises(ValueError, match="use query_many"):
        lsh.query(np.ones((2, 8)))
    with pytest.raises(TypeError):
        lsh.query_many("one text")


def test_delete_contract(lsh):
    before = snapshot(lsh)
    with pytest.raises(ValueError, match="empty batch"):
        lsh.delete([])
    with pytest.raises(ValueError, match="duplicate"):
        lsh.delete([1, 1])
    with pytest.raises(TypeError):
        lsh.delete(["1"])
    assert snapshot(lsh) == before
    assert lsh.delete([999]) == 0  # unknown ids are not an error
    assert lsh.delete(np.array([1, 999], dtype=np.uint16)) == 1


@pytest.mark.parametrize("bad", ["", "a:b", "a*", "x" * 65, "tab\t", "é"])
def test_index_names_are_validated(redis_client, bad):
    from lshrs import LSHRS, MemoryStore

    with pytest.raises(ValueError, match="name"):
        LSHRS(name=bad, redis=redis_client, store=MemoryStore())


def test_bad_constructor_arguments(redis_client):
    from lshrs import LSHRS, MemoryStore

    with pytest.raises(ValueError, match="id_bytes"):
        LSHRS(redis=redis_client, store=MemoryStore(), id_bytes=2)
    with pytest.raises(ValueError, match="num_bits"):
        LSHRS(redis=redis_client, store=MemoryStore(), num_bits=40)
    with pytest.raises(TypeError, match="num_tables"):
        LSHRS(redis=redis_client, store=MemoryStore(), num_tables="8")


@pytest.mark.parametrize("family", ["centroids", "hyperplanes"])
@pytest.mark.parametrize("scale", [1e20, 1e30, 1e-25, 1e-40])
def test_extreme_norms_score_their_true_cosine(make_index, scale, family):
    """|v|^2 of these overflows or underflows in float32; the rerank used to score them 0.0 (issue 14)."""
    rng = np.random.default_rng(3)
    base = rng.standard_normal((300, 16)).astype(np.float32)
    lsh = make_index(exact_below=0, family=family)
    lsh.ingest(vectors=base * np.float32(scale), ids=np.arange(300))
    for family_hit in (lsh.query(base[7] * np.float32(scale), top_k=1), lsh.query(base[7], top_k=1)):
        assert family_hit[0].id == 7 and family_hit[0].score == pytest.approx(1.0, abs=1e-5)


def test_exact_below_is_checked_when_the_index_is_made(redis_client, name):
    from lshrs import LSHRS, MemoryStore

    with pytest.raises(TypeError, match="exact_below: expected an int, got str"):
        LSHRS(redis=redis_client, name=name, store=MemoryStore(), exact_below="1000")
    with pytest.raises(ValueError, match="exact_below: expected >= 0"):
        LSHRS(redis=redis_client, name=name, store=MemoryStore(), exact_below=-1)
    assert redis_client.exists(f"lshrs:{name}:meta") == 0


@pytest.mark.parametrize("ids", [[2**70], [-1, 2**63], (5, -(2**63) - 1)])
def test_ids_past_64_bits_are_named(lsh, ids):
    with pytest.raises(ValueError, match="is outside the signed 64-bit range"):
        lsh.ingest(vectors=np.ones((len(ids), 8)), ids=ids)
    with pytest.raises(ValueError, match="is outside the signed 64-bit range"):
        lsh.delete(ids)
    assert lsh.count() == 4
