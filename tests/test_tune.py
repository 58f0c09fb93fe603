"""`LSHRS.tune` and `lshrs tune`: real Redis, real stores, clustered synthetic vectors."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import redis
from conftest import clustered, exact_top_k, index_factory
from servers import free_port

from lshrs import LSHRS, SQLiteStore
from lshrs.tune import LATENCY_TIE, SCRATCH_PREFIX, TuneResult, default_bits

N, DIM = 3_000, 64
# Spread enough that recall depends on the setting (from about 0.6 to 1.0 on GRID).
DATA = clustered(N + 100, DIM, clusters=100, noise=1.5, seed=3)
CORPUS, FRESH, EXTRA = DATA[:N], DATA[N : N + 90], DATA[N + 90 :]  # FRESH: queries from the clusters, never stored
GRID = {"num_tables": [8, 16], "num_bits": [6, 8], "num_probes": [4, 16]}
SMALL = dict(sample_size=2_000, num_queries=60, grid=GRID)


@pytest.fixture
def make_index(make_index):
    """Hyperplane indexes: the tuner measures (tables, bits, probes), the hyperplanes' parameters."""

    def make(**kwargs) -> LSHRS:
        kwargs.setdefault("family", "hyperplanes")
        return make_index(**kwargs)

    return make


def loaded(make_index, **kwargs) -> LSHRS:
    lsh = make_index(**kwargs)
    lsh.ingest(vectors=CORPUS, ids=np.arange(N) * 7)  # ids unlike positions: the sample must keep them apart
    return lsh


def recall_on_fresh(lsh: LSHRS, top_p: float | None = None) -> float:
    """Recall@10 of queries the index never saw, against exact top-10 over the stored corpus."""
    truth = exact_top_k(FRESH, CORPUS, 10) * 7
    if top_p is not None:
        lsh.warm()
    hits = lsh.query_many(FRESH, top_k=10, top_p=top_p)
    return float(np.mean([len({h.id for h in got} & set(want.tolist())) / 10 for got, want in zip(hits, truth)]))


def scratch_keys(client: redis.Redis) -> list[bytes]:
    return list(client.scan_iter(match=f"lshrs:{SCRATCH_PREFIX}*"))


def dump(client: redis.Redis, pattern: str) -> dict[bytes, object]:
    return {
        k: client.hgetall(k) if client.type(k) == b"hash" else client.get(k) for k in client.scan_iter(match=pattern)
    }


def snapshot(client: redis.Redis, lsh: LSHRS) -> tuple:
    """Everything tune could change: the index's Redis keys and values, and the stored ids."""
    stored = np.concatenate([np.empty(0, np.int64), *(r.ids for r in lsh.store.scan(payload=False))])
    return dump(client, f"lshrs:{lsh.name}:*"), stored.tolist(), scratch_keys(client)


# -- choosing ------------------------------------------------------------------


def test_tune_picks_the_fastest_setting_that_meets_the_target(make_index, store, redis_client):
    lsh = loaded(make_index, store=store)
    before = snapshot(redis_client, lsh)
    result = lsh.tune(target_recall=0.9, **SMALL)

    expected = list(itertools.product(GRID["num_tables"], GRID["num_bits"], GRID["num_probes"]))
    full = [r for r in result.rows if r.top_p is None]
    assert [(r.num_tables, r.num_bits, r.num_probes) for r in full] == expected
    assert (result.sample_size, result.num_queries, result.index_size, result.truth_over) == (1_940, 60, N, N)
    passing = [r for r in result.rows if r.recall >= 0.9]
    assert result.met and result.chosen in passing and 0 < len(passing) < len(result.rows)
    assert result.chosen.est_p50_ms <= min(r.est_p50_ms for r in passing) * (1 + LATENCY_TIE)
    for row in result.rows:
        assert 0 < row.candidates <= 1_940 and row.candidates_fraction == pytest.approx(row.candidates / 1_940)
        assert row.est_candidates == pytest.approx(row.candidates_fraction * N)
        assert row.p50_ms > 0 and row.est_p50_ms >= row.p50_ms and row.bytes_per_vector > 0
    for tables, bits in itertools.product(GRID["num_tables"], GRID["num_bits"]):  # more probes: more recall and work
        few, many = (r for r in full if (r.num_tables, r.num_bits) == (tables, bits))
        assert many.recall >= few.recall and many.candidates > few.candidates

    # top_p rows: the three fastest passing full rows, each at every default share, reranking less and
    # never finding more than the full rerank of the same candidates.
    sketched = [r for r in result.rows if r.top_p is not None]
    fastest = sorted((r for r in full if r.recall >= 0.9), key=lambda r: r.est_p50_ms)[:3]
    assert [(r.num_tables, r.num_bits, r.num_probes, r.top_p) for r in sketched] == [
        (r.num_tables, r.num_bits, r.num_probes, share) for r in fastest for share in (0.1, 0.05, 0.02)
    ]
    for row in sketched:
        same = next(r for r in fastest if (r.num_tables, r.num_bits, r.num_probes) == (row.num_tables, row.num_bits,
                                                                                        row.num_probes))  # fmt: skip
        assert row.recall <= same.recall and row.candidates == same.candidates
        assert row.est_reranked == max(np.ceil(row.top_p * same.est_candidates), 10) < same.est_reranked
        assert row.setting.endswith(f", top_p={row.top_p:g}")

    # The recall the tuner measured holds on the real index built with the chosen setting.
    check = make_index(name=lsh.name + "-check", store=store, exact_below=0, num_tables=result.chosen.num_tables,
                       num_bits=result.chosen.num_bits, num_probes=result.chosen.num_probes)  # fmt: skip
    check.index()
    assert recall_on_fresh(check, result.chosen.top_p) >= 0.9 - 0.03

    assert snapshot(redis_client, lsh) == before  # only read: the user's keys and rows, and no scratch left
    text = str(result)
    assert text.splitlines()[1].split() == [
        *("tables", "bits", "probes", "top_p", "recall", "cand/query", "cand", "%", "est.", "cand", "est.", "rerank"),
        *("p50", "ms", "est.", "p50", "ms", "Redis", "B/vec"),
    ]
    assert len(text.splitlines()) == len(result.rows) + 3 and text.count("<-") == 1
    assert text.splitlines()[-1].startswith(f"chosen: {result.chosen.setting} (recall@10 ")


def test_a_small_sample_measures_what_the_full_index_does(make_index, redis_client):
    """600 of 3,000 rows: recall against the whole store's neighbours and candidates scaled to its size."""
    lsh = loaded(make_index)
    setting = {"num_tables": [8], "num_bits": [8], "num_probes": [4]}
    result = lsh.tune(sample_size=600, num_queries=100, grid=setting, top_p=())
    (row,) = result.rows
    assert (result.sample_size, result.index_size, result.truth_over) == (500, N, N)
    assert row.est_candidates == pytest.approx(row.candidates / 500 * N)
    assert row.est_p50_ms > row.p50_ms  # the extra candidates, priced on the user's store

    full = make_index(name=lsh.name + "-full", store=lsh.store, exact_below=0, num_tables=8, num_bits=8, num_probes=4)
    full.index()
    assert row.recall == pytest.approx(recall_on_fresh(full), abs=0.06)
    assert row.est_candidates == pytest.approx(full.candidate_counts(FRESH).mean(), rel=0.1)
    # Truth taken within the sample alone would be far off: a query's neighbours in it are farther away.
    within = lsh.tune(lsh.get(np.arange(600) * 7).vectors, num_queries=100, grid=setting, top_p=())
    assert within.truth_over == 500 and within.rows[0].recall < row.recall - 0.08


def test_unreachable_target_reports_the_best_and_applies_nothing(make_index, redis_client):
    lsh = loaded(make_index)
    before = snapshot(redis_client, lsh)
    grid = {"num_tables": [1, 2], "num_bits": [16], "num_probes": [1]}
    result = lsh.tune(target_recall=1.0, sample_size=1_000, num_queries=50, grid=grid, apply=True)
    assert not result.met and result.chosen is None and not result.applied
    assert result.best is max(result.rows, key=lambda r: r.recall) and result.best.recall < 1.0
    assert result.summary().startswith(f"no setting reached recall 1 (best {result.best.recall:.3f} at num_tables=")
    assert "<-" not in result.table()
    assert snapshot(redis_client, lsh) == before


def test_scratch_indexes_are_removed_when_interrupted(make_index, redis_client, monkeypatch):
    """A real Ctrl-C (SIGINT to this process) once every scratch index exists.

    Sent from the first measurement rather than by a timer: on a fast
    machine a small tune finished before a 0.5 s timer fired.
    """
    import lshrs.tune

    lsh = make_index()
    measured = lshrs.tune.measure_probes
    seen: list[int] = []

    def interrupted(*args, **kwargs):
        seen.append(len(scratch_keys(redis_client)))
        os.kill(os.getpid(), signal.SIGINT)
        return measured(*args, **kwargs)

    monkeypatch.setattr(lshrs.tune, "measure_probes", interrupted)
    # A suite started in the background by a non-interactive shell (`pytest &`) inherits
    # SIGINT ignored, and Python keeps it ignored: install Python's own handler for the test.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            lsh.tune(CORPUS, num_queries=50, grid={"num_tables": [4, 8, 12], "num_bits": [4, 6]})
    finally:
        signal.signal(signal.SIGINT, previous)
    assert len(seen) == 1 and seen[0] > 0  # interrupted once, with scratch keys in Redis
    assert scratch_keys(redis_client) == []
    assert lsh.store.count() == 0 and not list(redis_client.scan_iter(match=f"lshrs:{lsh.name}:*"))


def test_default_grid_bits_follow_the_index_size():
    assert default_bits(4_000) == (6, 8, 10)
    assert default_bits(1_000_000) == (14, 16, 18)
    assert default_bits(10) == (4,)  # clamped to the smallest useful width


# -- applying --------------------------------------------------------------------


def test_apply_rebuilds_the_index_with_the_chosen_setting(make_index, store, redis_client):
    lsh = loaded(make_index, store=store, num_tables=12, num_bits=14)
    lsh.ingest(vectors=EXTRA[:2])  # ids from the index's counter, which must survive
    job = f"lshrs:{lsh.name}:job:0123456789abcdef"
    redis_client.hset(job, mapping={"articles": 5, "passages": 50})  # a Wikipedia job checkpoint, kept too
    result = lsh.tune(target_recall=0.9, apply=True, **SMALL)
    chosen = result.chosen
    assert result.applied and chosen is not None and str(result).splitlines()[-1].startswith("applied: ")

    meta = redis_client.hgetall(f"lshrs:{lsh.name}:meta")
    assert int(meta[b"num_tables"]) == chosen.num_tables and int(meta[b"num_bits"]) == chosen.num_bits
    assert int(meta[b"num_probes"]) == chosen.num_probes and meta[b"build"] == b"done" and meta[b"next_id"] == b"2"
    assert redis_client.hgetall(job) == {b"articles": b"5", b"passages": b"50"}
    again = LSHRS(name=lsh.name, redis=redis_client, store=store)  # another process attaching
    assert (again.params["num_tables"], again.params["num_bits"], again.num_probes) == (
        chosen.num_tables, chosen.num_bits, chosen.num_probes)  # fmt: skip
    assert again.count() == N + 2 and again.verify()["ok"]
    again.exact_below = 0
    assert recall_on_fresh(again) >= 0.9 - 0.03
    assert scratch_keys(redis_client) == []


def test_apply_with_the_same_tables_and_bits_only_saves_the_probes(make_index, redis_client):
    lsh = loaded(make_index, num_tables=8, num_bits=6)
    buckets_before = dump(redis_client, f"lshrs:{lsh.name}:b:*")
    grid = {"num_tables": [8], "num_bits": [6], "num_probes": [3]}
    result = lsh.tune(target_recall=0.5, sample_size=1_000, num_queries=50, grid=grid, apply=True)
    assert result.applied and lsh.num_probes == 3
    assert dump(redis_client, f"lshrs:{lsh.name}:b:*") == buckets_before
    assert LSHRS(name=lsh.name, redis=redis_client, store=lsh.store).num_probes == 3
    assert LSHRS(name=lsh.name, redis=redis_client, store=lsh.store, num_probes=5).num_probes == 5  # explicit wins


def test_an_interrupted_redefinition_is_finished_by_index(make_index, redis_client):
    """tune(apply=True) swaps the definition, then index() rebuilds; a crash in between leaves old buckets."""
    lsh = loaded(make_index, num_tables=6, num_bits=9)
    lsh.attachment.redefine(DIM, 10, 7, 20)  # what apply does before its index(): here the process "dies"
    again = LSHRS(name=lsh.name, redis=redis_client, store=lsh.store)
    assert (again.params["num_tables"], again.params["num_bits"], again.num_probes) == (10, 7, 20)
    assert again.index() == N
    report = again.verify()
    assert report["ok"] and report["stale_entries"] == 0 and again.count() == N


def test_tuning_vectors_before_any_ingest_defines_the_index(make_index, redis_client):
    lsh = make_index()
    result = lsh.tune(CORPUS, target_recall=0.9, num_queries=50, grid=GRID, apply=True)
    assert result.applied and result.index_size == N - 50
    assert (lsh.params["num_tables"], lsh.params["num_bits"]) == (result.chosen.num_tables, result.chosen.num_bits)
    lsh.ingest(vectors=CORPUS[:100], ids=range(100))
    assert lsh.count() == 100 and lsh.verify()["ok"]


def test_apply_is_refused_when_the_store_cannot_give_the_vectors_back(make_index, redis_client):
    lsh = make_index(num_tables=8, num_bits=6)
    lsh.ingest(vectors=CORPUS[:500], ids=range(500))
    lsh.index(np.arange(500, 800), CORPUS[500:800])  # indexed, but never written to the store
    before = snapshot(redis_client, lsh)
    with pytest.raises(ValueError, match="the store holds 500 rows but the index 800"):
        lsh.tune(CORPUS, target_recall=0.5, num_queries=50, grid={"num_tables": [4], "num_bits": [6]}, apply=True)
    assert snapshot(redis_client, lsh) == before


@pytest.fixture
def make_cluster_index(cluster_client, name):
    yield from index_factory(cluster_client, name)


def test_tune_and_apply_on_a_redis_cluster(make_cluster_index, cluster_client):
    """Scratch indexes, memory readings and the rebuild all go through the cluster client unchanged."""
    lsh = loaded(make_cluster_index, num_tables=12, num_bits=14)
    result = lsh.tune(target_recall=0.9, apply=True, **SMALL)
    assert result.applied and all(r.bytes_per_vector for r in result.rows)
    assert (lsh.params["num_tables"], lsh.params["num_bits"]) == (result.chosen.num_tables, result.chosen.num_bits)
    assert lsh.count() == N and lsh.verify()["ok"]
    assert not list(cluster_client.scan_iter(match=f"lshrs:{SCRATCH_PREFIX}*"))


# -- bad input -------------------------------------------------------------------

BAD = [
    (dict(target_recall=0.0), ValueError, "target_recall"),
    (dict(target_recall=1.5), ValueError, "target_recall"),
    (dict(target_recall=float("nan")), ValueError, "target_recall"),
    (dict(target_recall="high"), TypeError, "target_recall"),
    (dict(top_k=0), ValueError, "top_k"),
    (dict(sample_size=0), ValueError, "sample_size"),
    (dict(num_queries=0), ValueError, "num_queries"),
    (dict(apply="yes"), TypeError, "apply"),
    (dict(top_p=[0.1, 0.0]), ValueError, "top_p"),
    (dict(top_p=[None]), TypeError, "top_p"),
    (dict(top_p=0.1), TypeError, "top_p"),
    (dict(grid={"num_probes": []}), ValueError, "grid"),
    (dict(grid={"tables": [8]}), ValueError, "unknown keys"),
    (dict(grid={"num_bits": [40]}), ValueError, "num_bits"),
    (dict(grid={"num_tables": [0]}), ValueError, "num_tables"),
    (dict(vectors=np.ones((50, DIM + 1))), ValueError, "expected shape"),
    (dict(vectors=np.vstack([CORPUS[:50], [[np.nan] * DIM]])), ValueError, "NaN"),
    (dict(vectors=np.vstack([CORPUS[:50], np.zeros((1, DIM))])), ValueError, "all-zero"),
    (dict(vectors=CORPUS[:20], num_queries=15), ValueError, "too few"),
    (dict(sample_size=30), ValueError, "too few"),
]


@pytest.mark.parametrize("kwargs, exc, match", BAD)
def test_bad_input_raises_and_changes_nothing(make_index, redis_client, kwargs, exc, match):
    lsh = make_index(num_tables=4, num_bits=6)
    lsh.ingest(vectors=CORPUS[:200], ids=range(200))
    before = snapshot(redis_client, lsh)
    with pytest.raises(exc, match=match):
        lsh.tune(**{"num_queries": 25, "apply": True, **kwargs})
    assert snapshot(redis_client, lsh) == before


def test_an_empty_store_is_refused(make_index, redis_client):
    lsh = make_index()
    with pytest.raises(ValueError, match="the store is empty; pass vectors="):
        lsh.tune()
    assert not list(redis_client.scan_iter(match=f"lshrs:{lsh.name}:*")) and scratch_keys(redis_client) == []


# -- the command -----------------------------------------------------------------


def lshrs(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LSHRS_") and k != "REDIS_URL"}
    return subprocess.run([sys.executable, "-m", "lshrs", *args], capture_output=True, text=True, timeout=300,
                          env={**clean, **env})  # fmt: skip


@pytest.fixture
def cli_index(redis_url: str, name: str, tmp_path: Path) -> dict[str, str]:
    """An index of CORPUS in a SQLite file, and the environment that points `lshrs` at it."""
    path = tmp_path / "docs.sqlite3"
    with LSHRS(name=name, redis_url=redis_url, store=SQLiteStore(path, table=name), num_tables=12) as lsh:
        lsh.ingest(vectors=CORPUS, ids=range(N))
    yield {"LSHRS_REDIS_URL": redis_url, "LSHRS_NAME": name, "LSHRS_SQLITE": str(path)}
    with LSHRS(name=name, redis_url=redis_url, store=SQLiteStore(path, table=name)) as lsh:
        lsh.clear()


CLI_GRID = ["--sample", "1500", "--queries", "50", "--tables", "8,16", "--bits", "6,8", "--probes", "4,16"]


def test_cli_tune_prints_the_table_and_the_choice(cli_index):
    result = lshrs("tune", "--no-progress", "--target-recall", "0.9", "--top-p", "none", *CLI_GRID, env=cli_index)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1].split()[:5] == ["tables", "bits", "probes", "top_p", "recall"] and len(lines) == 2 + 8 + 1
    assert lines[-1].startswith("chosen: num_tables=") and result.stderr == ""

    args = ["--json", "--target-recall", "0.9", "--top-p", "0.1", *CLI_GRID]
    as_json = lshrs("tune", "--no-progress", *args, env=cli_index)
    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    shares = [row["top_p"] for row in report["rows"]]
    assert report["met"] and shares[:8] == [None] * 8 and 1 <= len(shares[8:]) <= 3 and set(shares[8:]) == {0.1}
    assert report["chosen"] in report["rows"] and TuneResult.__dataclass_fields__.keys() == report.keys()


def test_cli_tune_apply_changes_the_index(cli_index):
    result = lshrs("tune", "--no-progress", "--apply", "--target-recall", "0.9", *CLI_GRID, env=cli_index)
    assert result.returncode == 0, result.stderr
    applied = result.stdout.splitlines()[-1]
    assert applied.startswith("applied: num_tables=")
    stats = json.loads(lshrs("stats", env=cli_index).stdout)
    assert (
        f"num_tables={stats['num_tables']}, num_bits={stats['num_bits']}, num_probes={stats['num_probes']}" in applied
    )
    assert stats["count"] == stats["store_count"] == N


def test_cli_tune_exits_1_when_no_setting_reaches_the_target(cli_index):
    args = ["--sample", "1000", "--queries", "50", "--tables", "1", "--bits", "16", "--probes", "1"]
    before = json.loads(lshrs("stats", env=cli_index).stdout)["num_tables"]
    result = lshrs("tune", "--no-progress", "--apply", "--target-recall", "1", *args, env=cli_index)
    assert result.returncode == 1
    assert result.stderr.startswith("lshrs: no setting reached recall 1 (best ") and "nothing applied" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "tables bits probes" in result.stdout
    assert json.loads(lshrs("stats", env=cli_index).stdout)["num_tables"] == before


def test_cli_tune_errors(cli_index, tmp_path):
    assert lshrs("tune", "--tables", "8,x", env=cli_index).returncode == 2
    assert lshrs("tune", "--top-p", "0.1,2", env=cli_index).returncode == 2
    empty = {**cli_index, "LSHRS_SQLITE": str(tmp_path / "empty.sqlite3"), "LSHRS_NAME": "t" + os.urandom(6).hex()}
    result = lshrs("tune", "--no-progress", env=empty)
    assert result.returncode == 1 and "does not exist yet" in result.stderr and "Traceback" not in result.stderr
    missing = lshrs("tune", "--no-progress", "--vectors", str(tmp_path / "nope.npy"), env=cli_index)
    assert missing.returncode == 1 and "nope.npy" in missing.stderr
    dead = lshrs("tune", "--no-progress", env={**cli_index, "LSHRS_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    assert dead.returncode == 3 and dead.stderr.startswith("lshrs: error:")
