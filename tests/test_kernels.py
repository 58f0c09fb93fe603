"""The compiled code scorer (lshrs.kernels, numba) against the numpy path it replaces: same candidates, same scores."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import clustered, exact_top_k

from lshrs import kernels
from lshrs.centroids import Centroids
from lshrs.codes import PREFILTER

pytest.importorskip("numba")


def numpy_path(monkeypatch) -> None:
    monkeypatch.setattr(kernels, "score_runs", lambda: None)


def fitted(dim: int, n: int = 12_000) -> tuple[Centroids, np.ndarray, np.ndarray]:
    """A trained family, the ranking codes of `n` clustered vectors, and 12 queries near them."""
    vectors = clustered(n, dim=dim, clusters=30, seed=2)
    family = Centroids.fit(vectors[:4_000], 32, seed=1)
    queries = clustered(n + 12, dim=dim, clusters=30, seed=2)[n:] + 0.05
    return family, family.rank_codes(vectors), queries


def both(monkeypatch, method, *args) -> tuple:
    """`method(*args)` compiled, then on the numpy path."""
    compiled = method(*args)
    with monkeypatch.context() as m:
        numpy_path(m)
        plain = method(*args)
    return compiled, plain


def assert_same(compiled: np.ndarray, plain: np.ndarray) -> None:
    kept = np.isfinite(plain)
    assert np.array_equal(np.isfinite(compiled), kept)  # the same candidates, ties at the cut included
    np.testing.assert_allclose(compiled[kept], plain[kept], rtol=1e-5, atol=1e-4)  # summed in other orders


def test_the_compiler_is_used_when_numba_is_installed():
    assert kernels.score_runs() is not None


@pytest.mark.parametrize("dim", [384, 300, 64])  # 48-byte codes, 38 (not whole words), 256 projected bits
def test_one_query_keeps_and_scores_what_numpy_does(monkeypatch, dim):
    family, codes, queries = fitted(dim)
    assert len(codes) > PREFILTER  # the cut falls among ties of the small integer distances
    compiled, plain = both(monkeypatch, family.code_scores, queries[:1], np.zeros(len(codes), np.int64), codes)
    assert np.isfinite(plain).sum() == PREFILTER
    assert_same(compiled, plain)


def test_a_batch_with_shared_codes_matches_numpy(monkeypatch):
    """query_many: each query's run of candidates points at rows of one shared code array (`at`)."""
    family, codes, queries = fitted(384)
    rng = np.random.default_rng(0)
    sizes = [3_000, 0, 700, 5_000, 1, 2_500]  # runs longer and shorter than PREFILTER, and empty
    query_index = np.repeat(np.arange(len(sizes)), sizes)
    at = rng.integers(0, len(codes), len(query_index))
    compiled, plain = both(monkeypatch, family.code_scores, queries[: len(sizes)], query_index, codes, at)
    assert_same(compiled, plain)
    assert np.isfinite(compiled[query_index == 2]).all()  # a run shorter than PREFILTER keeps everything


def test_no_candidates(monkeypatch):
    family, codes, queries = fitted(384, n=2_000)
    compiled, plain = both(monkeypatch, family.code_scores, queries[:1], np.empty(0, np.int64), codes[:0])
    assert compiled.shape == plain.shape == (0,)
    none = np.empty(0, np.int64)
    (kept, best), (kept_np, best_np) = both(monkeypatch, family.best_by_code, queries[:1], none, codes[:0], None, 10)
    assert kept.shape == kept_np.shape == best.shape == best_np.shape == (0,)


@pytest.mark.parametrize("depth", [1, 200, PREFILTER + 500])  # past PREFILTER: unscored ones fill, by position
def test_the_best_by_code_are_those_numpy_keeps(monkeypatch, depth):
    """Selection in the kernel: the same positions in the same order, ties (duplicate codes) to the earlier one."""
    family, codes, queries = fitted(384)
    rng = np.random.default_rng(3)
    codes = np.concatenate([codes, codes[:3_000]])  # every one of these scores exactly as its twin
    sizes = [4_000, 0, 150, 800, 2_600, 1]  # longer than PREFILTER, empty, shorter than depth, between
    query_index = np.repeat(np.arange(len(sizes)), sizes)
    at = rng.permutation(len(codes))[: len(query_index)]
    at[:2_000:2] = at[1:2_000:2]  # the same code twice within a run
    (kept, best), (kept_np, best_np) = both(
        monkeypatch, family.best_by_code, queries[: len(sizes)], query_index, codes, at, depth
    )
    assert np.array_equal(kept, kept_np)
    np.testing.assert_allclose(best, best_np, rtol=1e-5, atol=1e-4)
    assert np.array_equal(np.bincount(query_index[kept], minlength=len(sizes)), np.minimum(sizes, depth))
    scores = family.code_scores(queries[: len(sizes)], query_index, codes, at)
    assert np.array_equal(best[np.isfinite(best)], scores[kept][np.isfinite(best)])


def test_codes_are_read_in_place_from_the_bucket_bytes(monkeypatch):
    """A bucket read's codes, a read-only view one entry apart, score as the same codes copied out."""
    family, codes, queries = fitted(384, n=3_000)
    entries = np.zeros(len(codes), dtype=[("id", "<u4"), ("code", "u1", (codes.shape[1],))])
    entries["code"] = codes
    view = np.frombuffer(entries.tobytes(), dtype=entries.dtype)["code"]
    assert not view.flags.c_contiguous and not view.flags.writeable
    query_index = np.zeros(len(codes), np.int64)
    in_place = family.best_by_code(queries[:1], query_index, view, None, 200)
    copied = family.best_by_code(queries[:1], query_index, codes, None, 200)
    assert np.array_equal(in_place[0], copied[0]) and np.array_equal(in_place[1], copied[1])


def test_an_index_answers_the_same_either_way(make_index, monkeypatch):
    vectors = clustered(8_000, dim=96, clusters=50, seed=4)
    queries = clustered(8_020, dim=96, clusters=50, seed=4)[8_000:] + 0.02
    lsh = make_index(family="centroids", exact_below=0)
    lsh.store.put(np.arange(len(vectors)), vectors)
    lsh.index()
    compiled = [[h.id for h in row] for row in lsh.query_many(queries, top_k=10)]
    one = [[h.id for h in lsh.query(q, top_k=10)] for q in queries[:5]]
    numpy_path(monkeypatch)
    assert compiled == [[h.id for h in row] for row in lsh.query_many(queries, top_k=10)]
    assert one == [[h.id for h in lsh.query(q, top_k=10)] for q in queries[:5]]
    truth = exact_top_k(queries, vectors, 10)
    assert np.mean([len(set(c) & set(t.tolist())) / 10 for c, t in zip(compiled, truth)]) > 0.9


def test_the_environment_can_keep_numpy():
    code = "from lshrs import kernels; print(kernels.score_runs() is None)"
    env = {**os.environ, "LSHRS_KERNELS": "numpy"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def test_a_compiler_that_fails_leaves_numpy_and_a_warning(monkeypatch, caplog):
    """numba installed but unable to compile (or to cache): queries go on with numpy instead of failing."""
    from lshrs import _compiled

    def broken(*args):
        raise RuntimeError("no LLVM here")

    caplog.set_level(logging.WARNING, logger="lshrs")
    monkeypatch.setattr(_compiled, "score_runs", broken)
    assert_falls_back(monkeypatch, caplog, "could not compile the code scorer (no LLVM here)")


def test_a_numba_that_cannot_set_up_its_cache_leaves_numpy(monkeypatch, caplog):
    """numba raises RuntimeError when the kernel module is imported and it finds no cache directory to use."""
    import lshrs

    class NoCache:
        def find_spec(self, name, path=None, target=None):
            if name == "lshrs._compiled":
                raise RuntimeError("cannot cache function 'score_runs': no locator available")
            return None

    caplog.set_level(logging.WARNING, logger="lshrs")
    monkeypatch.delitem(sys.modules, "lshrs._compiled", raising=False)
    monkeypatch.delattr(lshrs, "_compiled", raising=False)
    monkeypatch.setattr(sys, "meta_path", [NoCache(), *sys.meta_path])
    assert_falls_back(monkeypatch, caplog, "no locator available")


def assert_falls_back(monkeypatch, caplog, message: str) -> None:
    """While monkeypatch's changes hold, the guard gives numpy and logs `message`; undone, the compiler again."""
    kernels.score_runs.cache_clear()
    try:
        assert kernels.score_runs() is None
        assert message in caplog.text
    finally:
        monkeypatch.undo()
        kernels.score_runs.cache_clear()
    assert kernels.score_runs() is not None
