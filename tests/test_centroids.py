"""The centroid hash family and its ranking codes: pure numpy, no servers."""

from __future__ import annotations

import numpy as np
import pytest

from lshrs import centroids as centroids_module
from lshrs.centroids import (
    MAX_NLIST,
    MIN_CODE_BITS,
    MIN_ROWS_PER_CENTROID,
    Centroids,
    default_nlist,
    train,
)
from lshrs.codes import asymmetric_scores, centre, hamming, hamming_pairs, rank_codes


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered(n: int, clusters: int, dim: int, spread: float, seed: int) -> np.ndarray:
    """Gaussian clusters on the unit sphere, noise of norm about `spread` around each unit centre."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.standard_normal((clusters, dim)))
    return unit(centres[rng.integers(0, clusters, n)] + spread * rng.standard_normal((n, dim)) / np.sqrt(dim))


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    return clustered(4000, 40, 32, 1.0, seed=0)


@pytest.fixture(scope="module")
def fitted(data: np.ndarray) -> Centroids:
    return Centroids.fit(data, 64, seed=3)


def test_training_is_deterministic_for_a_seed(data):
    first = train(data, 32, seed=5)
    assert np.array_equal(first, train(data.copy(), 32, seed=5))
    assert not np.array_equal(first, train(data, 32, seed=6))


def test_centroids_are_unit_and_fit_the_data(data, fitted):
    assert fitted.centroids.shape == (64, 32) and fitted.centroids.dtype == np.float32
    assert np.allclose(np.linalg.norm(fitted.centroids, axis=1), 1.0, atol=1e-5)
    # k-means beats the centroids it started from: random rows of the data
    start = data[np.random.default_rng(0).choice(len(data), 64, replace=False)]
    assert np.mean(np.max(data @ fitted.centroids.T, axis=1)) > np.mean(np.max(data @ start.T, axis=1)) + 0.02
    assert np.allclose(fitted.mean, data.mean(axis=0), atol=1e-6)


def test_empty_clusters_are_reseeded():
    # 10 directions, 50 copies each: random starts pick the same direction twice,
    # leaving a cluster empty, and reseeding must still find all ten
    directions = unit(np.random.default_rng(1).standard_normal((10, 16)))
    sample = np.repeat(directions, 50, axis=0)
    cen = Centroids(train(sample, 10, seed=0), sample.mean(axis=0))
    assert sorted(np.unique(cen.codes(sample)).tolist()) == list(range(10))
    assert np.allclose(np.sort(cen.centroids @ directions.T, axis=1)[:, -1], 1.0, atol=1e-5)


def test_interface_sizes(fitted):
    assert Centroids.kind == "centroids" and fitted.kind == "centroids"
    assert (fitted.dim, fitted.num_tables, fitted.num_bits) == (32, 1, 6)
    one = np.ones((1, 4), np.float32) / 2
    assert Centroids(one, np.zeros(4, np.float32)).num_bits == 1
    assert Centroids(np.vstack([one] * 5), np.zeros(4, np.float32)).num_bits == 3


def test_every_code_is_the_argmax_centroid(data, fitted):
    codes = fitted.codes(data * 3.0)  # the bucket ignores the vector's length
    assert codes.shape == (len(data), 1) and codes.dtype == np.int64
    expected = np.argmax(data.astype(np.float64) @ fitted.centroids.astype(np.float64).T, axis=1)
    assert np.array_equal(codes[:, 0], expected)
    assert codes.min() >= 0 and codes.max() < 2**fitted.num_bits


def test_codes_do_not_depend_on_the_batch(data, fitted):
    whole = fitted.codes(data)
    for size in (1, 7, 333, 1024):
        parts = np.vstack([fitted.codes(data[i : i + size]) for i in range(0, 1500, size)])
        assert np.array_equal(parts, whole[: len(parts)])


def test_blocked_passes_match_one_pass(data, fitted, monkeypatch):
    whole_codes, whole_train = fitted.codes(data), train(data, 32, seed=5)
    monkeypatch.setattr(centroids_module, "_SCORE_CELLS", 64 * 300)  # blocks of 300 rows
    assert np.array_equal(fitted.codes(data), whole_codes)
    assert np.allclose(train(data, 32, seed=5), whole_train, atol=1e-5)


def test_probes_are_the_nearest_centroids_best_first(data, fitted):
    queries = data[:50]
    probes = fitted.probes(queries, 8)
    assert probes.shape == (50, 1, 8) and probes.dtype == np.int64
    assert np.array_equal(probes[:, 0, 0], fitted.codes(queries)[:, 0])
    sims = queries.astype(np.float64) @ fitted.centroids.astype(np.float64).T
    ordered = np.take_along_axis(sims, probes[:, 0], axis=1)
    assert np.all(np.diff(ordered, axis=1) <= 0)
    assert np.array_equal(np.sort(probes[:, 0], axis=1), np.sort(np.argsort(-sims, axis=1)[:, :8], axis=1))
    everything = fitted.probes(queries, 1000)  # clamped to nlist: every centroid once
    assert everything.shape == (50, 1, 64)
    assert all(sorted(row) == list(range(64)) for row in everything[:, 0].tolist())


def test_fields_round_trip_exactly(fitted):
    fields = fitted.fields()
    assert set(fields) == {"centroids", "mean", "nlist", "trained_rows"} | (
        {"projection"} if fitted.dim < MIN_CODE_BITS else set()
    )
    assert all(isinstance(v, bytes | int) for v in fields.values())
    as_read = {k: v if isinstance(v, bytes) else str(v).encode() for k, v in fields.items()}  # Redis returns bytes
    back = Centroids.from_fields(as_read, fitted.dim)
    assert np.array_equal(back.centroids, fitted.centroids) and np.array_equal(back.mean, fitted.mean)
    assert (back.num_bits, back.num_tables, back.dim) == (fitted.num_bits, fitted.num_tables, fitted.dim)
    assert back.trained_rows == fitted.trained_rows > 0
    assert np.array_equal(back.rank_codes(fitted.centroids), fitted.rank_codes(fitted.centroids))
    with pytest.raises(ValueError, match="fields"):
        Centroids.from_fields(as_read, fitted.dim + 1)


@pytest.mark.parametrize(
    ("sample", "nlist", "error", "message"),
    [
        (np.ones((20, 4)), 0, ValueError, "nlist: expected >= 1"),
        (np.ones((20, 4)), 2.5, TypeError, "nlist: expected an int"),
        (np.ones((20, 4)), True, TypeError, "nlist: expected an int"),
        (np.ones((3, 4)), 4, ValueError, "sample: expected at least nlist=4 rows, got 3"),
        (np.array([[1.0, np.nan], [1.0, 0.0]]), 1, ValueError, "sample: holds NaN"),
        (np.array([[1.0, 0.0], [0.0, 0.0]]), 1, ValueError, "sample: row 1 is all zeros"),
        (np.ones(8), 1, ValueError, r"sample: expected a non-empty 2-d array .* got shape \(8,\)"),
        (np.ones((2, 2, 2)), 1, ValueError, "sample: expected a non-empty 2-d array"),
        (np.empty((0, 4)), 1, ValueError, "sample: expected a non-empty 2-d array"),
        (np.array([["a", "b"]]), 1, TypeError, "sample: expected floats"),
    ],
)
def test_bad_input_is_refused(sample, nlist, error, message):
    with pytest.raises(error, match=message):
        train(sample, nlist, seed=0)


def test_bad_vectors_and_bits_are_refused(fitted):
    with pytest.raises(ValueError, match=r"vectors: expected shape \(n, 32\)"):
        fitted.codes(np.ones((3, 31), np.float32))
    with pytest.raises(ValueError, match="bits: expected at most the dimension 32"):
        rank_codes(np.ones((3, 32), np.float32), fitted.mean, bits=33)
    with pytest.raises(ValueError, match="iterations"):
        train(np.eye(4), 2, seed=0, iterations=0)


def test_default_nlist():
    for n in (30_000, 122_000, 6_400_000, 45_000_000):
        nlist = default_nlist(n)
        assert nlist & (nlist - 1) == 0  # a power of two
        assert 2 * np.sqrt(n) <= nlist <= 8 * np.sqrt(n)
        assert nlist * MIN_ROWS_PER_CENTROID <= n
    assert default_nlist(122_000) == 1024
    assert default_nlist(10) == 1 and default_nlist(1_000) == 16  # clamped by rows per centroid
    assert default_nlist(10**12) == MAX_NLIST


def test_rank_codes_are_the_signs_of_the_centred_vector(data, fitted):
    codes = rank_codes(data, fitted.mean)
    assert codes.shape == (len(data), 4) and codes.dtype == np.uint8
    signs = centre(data, fitted.mean) > 0
    assert np.array_equal(np.unpackbits(codes, axis=1).astype(bool), signs)
    short = rank_codes(data * 5.0, fitted.mean, bits=12)  # scale-free, and only the first 12 signs
    assert short.shape == (len(data), 2)
    assert np.array_equal(np.unpackbits(short, axis=1)[:, :12].astype(bool), signs[:, :12])


@pytest.mark.parametrize("width", [6, 8, 16])
@pytest.mark.parametrize("numpy_has_bitwise_count", [True, False])
def test_hamming_counts_differing_bits(width, numpy_has_bitwise_count, monkeypatch):
    if not numpy_has_bitwise_count:  # the byte table numpy < 2.0 uses
        monkeypatch.delattr(np, "bitwise_count", raising=False)
    rng = np.random.default_rng(width)
    codes = rng.integers(0, 256, (300, width), dtype=np.uint8)
    queries = rng.integers(0, 256, (4, width), dtype=np.uint8)
    bits = np.unpackbits(codes, axis=1)
    expected = (np.unpackbits(queries, axis=1)[:, None, :] != bits[None]).sum(axis=2)
    assert np.array_equal(hamming(queries, codes), expected)
    index = rng.integers(0, 4, 300)
    assert np.array_equal(hamming_pairs(queries, index, codes), expected[index, np.arange(300)])
    # one query (broadcast, not gathered), over codes as a bucket read hands them over: a strided field view
    entries = np.zeros(300, dtype=[("id", "<u4"), ("code", "u1", (width,))])
    entries["code"] = codes
    assert np.array_equal(hamming_pairs(queries[2:3], np.zeros(300, np.int64), entries["code"]), expected[2])


@pytest.mark.parametrize("dim", [20, 64])
def test_asymmetric_scores_match_the_signed_sum(dim):
    rng = np.random.default_rng(dim)
    vectors = rng.standard_normal((5000, dim)).astype(np.float32)  # more than one block of candidates
    mean = rng.standard_normal(dim).astype(np.float32) * 0.01
    codes = rank_codes(vectors, mean)
    queries = rng.standard_normal((3, dim)).astype(np.float32)
    index = rng.integers(0, 3, len(vectors))
    signs = np.where(centre(vectors, mean) > 0, 1.0, -1.0)
    expected = (queries[index].astype(np.float64) * signs).sum(axis=1)
    scores = asymmetric_scores(queries, index, codes)
    assert scores.dtype == np.float32 and scores.shape == (5000,)
    assert np.allclose(scores, expected, atol=1e-4)


@pytest.fixture(scope="module")
def search_set():
    """20k vectors from 200 clusters (dim 64), 200 held out as queries, exact top-10 as truth."""
    x = clustered(20_200, 200, 64, 1.0, seed=0)
    base, queries = x[200:], x[:200]
    truth = np.argsort(-(queries @ base.T), axis=1)[:, :10]
    cen = Centroids.fit(base, 128, seed=0)
    return base, queries, truth, cen, rank_codes(base, cen.mean)


def recall_after_ranking(search_set, ranking: str, nprobe: int = 8, depth: int = 100) -> float:
    """Probe nprobe buckets, keep the `depth` best candidates by the codes, rerank them exactly."""
    base, queries, truth, cen, codes = search_set
    buckets = cen.codes(base)[:, 0]
    probes = cen.probes(queries, nprobe)[:, 0]
    rng = np.random.default_rng(0)
    hits = 0
    for i, query in enumerate(queries):
        cand = np.flatnonzero(np.isin(buckets, probes[i]))
        at = np.zeros(len(cand), np.int64)
        if ranking == "asymmetric":
            score = asymmetric_scores(centre(query[None], cen.mean), at, codes[cand])
        elif ranking == "hamming":
            score = -hamming_pairs(rank_codes(query[None], cen.mean), at, codes[cand])
        else:
            score = rng.random(len(cand))
        kept = cand[np.argsort(-score, kind="stable")[:depth]]
        hits += len(np.intersect1d(kept[np.argsort(-(base[kept] @ query))[:10]], truth[i]))
    return hits / truth.size


def test_ranking_codes_keep_the_true_neighbours(search_set):
    # measured: asymmetric 0.989, Hamming 0.903, random order 0.08 (nprobe 8: ~1,280 candidates, depth 100)
    asymmetric = recall_after_ranking(search_set, "asymmetric")
    assert asymmetric >= 0.97
    assert asymmetric >= recall_after_ranking(search_set, "hamming")


def test_ranking_by_codes_beats_random_order(search_set):
    assert recall_after_ranking(search_set, "random") < 0.2
    assert recall_after_ranking(search_set, "hamming") > 0.8


def test_near_ties_are_decided_in_float64_whatever_the_batch():
    rng = np.random.default_rng(5)
    cents = rng.standard_normal((16, 48)).astype(np.float32)
    cents /= np.linalg.norm(cents, axis=1, keepdims=True)
    family = Centroids(cents, np.zeros(48, np.float32))
    middle = (cents[3].astype(np.float64) + cents[9]) / 2  # as near cents[3] as cents[9]
    nudged = [middle + t * (cents[9] - cents[3]) for t in (0.0, 1e-7, -1e-7, 1e-3)]
    near = np.array(nudged, dtype=np.float32)
    exact = np.argmax(near.astype(np.float64) @ cents.astype(np.float64).T, axis=1)
    crowd = np.concatenate([rng.standard_normal((997, 48)).astype(np.float32), near])
    for batch in (1, 3, 1000):
        got = np.concatenate([family.codes(crowd[i : i + batch])[:, 0] for i in range(0, len(crowd), batch)])
        assert got[-4:].tolist() == exact.tolist()
        assert np.array_equal(got[:-4], np.argmax(crowd[:-4].astype(np.float64) @ cents.T.astype(np.float64), 1))


def test_the_float64_decision_matches_a_full_float64_argmax_on_crowded_centroids():
    """Many near ties (centroids close together, some exact duplicates): only the near-tied are rescored."""
    rng = np.random.default_rng(11)
    base = rng.standard_normal((64, 32))
    cents = np.concatenate([base + 1e-4 * rng.standard_normal((64, 32)) for _ in range(8)])  # 8 near copies each
    cents[300] = cents[7]  # an exact duplicate: ties go to the lower index
    cents = (cents / np.linalg.norm(cents, axis=1, keepdims=True)).astype(np.float32)
    family = Centroids(cents, np.zeros(32, np.float32))
    vectors = np.concatenate([rng.standard_normal((3000, 32)), np.repeat(cents[7:8], 5, axis=0)]).astype(np.float32)
    exact = np.argmax(vectors.astype(np.float64) @ cents.astype(np.float64).T, axis=1)
    for batch in (1, 7, 4000):
        got = np.concatenate([family.codes(vectors[i : i + batch])[:, 0] for i in range(0, len(vectors), batch)])
        assert np.array_equal(got, exact)
    assert family.codes(vectors[-5:])[:, 0].tolist() == [7] * 5
