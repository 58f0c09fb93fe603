"""Parameter sweep on real MiniLM embeddings: recall@10, candidates, memory and latency.

    .venv/bin/python benchmarks/tune.py [--queries 300] [sources ...]

Uses the cached embeddings of benchmarks/realdata.py (held-out passages as
queries, exact top-10 by numpy). Starts its own Redis. Writes
benchmarks/results/tune.json and tune.md; the defaults in lshrs/index.py
come from this table.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

from core import used_memory  # noqa: E402
from realdata import load, split_queries  # noqa: E402
from servers import RedisServer  # noqa: E402

from lshrs import LSHRS, MemoryStore, __version__  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def sweep(url: str, corpus: np.ndarray, queries: np.ndarray, truth: np.ndarray, grid: list[tuple]) -> list[dict]:
    client = redis.Redis.from_url(url)
    store = MemoryStore()
    store.put(np.arange(len(corpus)), corpus)
    rows = []
    for tables, bits in sorted({(t, b) for t, b, _ in grid}):
        client.flushall()
        base = used_memory(client)
        lsh = LSHRS(name="tune", redis=client, store=store, num_tables=tables, num_bits=bits, exact_below=0)
        t0 = time.perf_counter()
        lsh.index()
        build = len(corpus) / (time.perf_counter() - t0)
        memory = (used_memory(client) - base) / len(corpus)
        for probes in sorted(p for t, b, p in grid if (t, b) == (tables, bits)):
            lsh.num_probes = probes
            lsh.query(queries[0])
            times, found = [], []
            for q in queries:
                t0 = time.perf_counter()
                found.append([h.id for h in lsh.query(q, top_k=10)])
                times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            lsh.query_many(queries, top_k=10)
            qps = len(queries) / (time.perf_counter() - t0)
            candidates = lsh.candidate_counts(queries, num_probes=probes)
            recall = np.mean([len(set(f) & set(t[:10].tolist())) / 10 for f, t in zip(found, truth)])
            row = {
                "num_tables": tables,
                "num_bits": bits,
                "num_probes": probes,
                "recall_at_10": float(recall),
                "candidates_fraction": float(candidates.mean() / len(corpus)),
                "p50_ms": float(np.median(times) * 1e3),
                "query_many_qps": qps,
                "redis_bytes_per_vector": memory,
                "build_vectors_per_s": build,
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
    client.flushall()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--tables", type=int, nargs="+", default=[8, 12, 16])
    parser.add_argument("--bits", type=int, nargs="+", default=[10, 12, 14])
    parser.add_argument("--probes", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("sources", nargs="*")
    args = parser.parse_args()
    texts, vectors = load(args.sources or None)
    corpus, queries, truth = split_queries(vectors, args.queries)
    grid = list(itertools.product(args.tables, args.bits, args.probes))
    rs = RedisServer()
    try:
        rows = sweep(rs.url, corpus, queries, truth, grid)
    finally:
        rs.stop()
    report = {
        "lshrs": __version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, 2 cores (shared)",
        "sources": args.sources or "all",
        "corpus": len(corpus),
        "queries": len(queries),
        "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "tune.json").write_text(json.dumps(report, indent=2))
    (RESULTS / "tune.md").write_text(markdown(report))
    print((RESULTS / "tune.md").read_text())


def markdown(r: dict) -> str:
    lines = [
        f"# Parameter sweep on real MiniLM embeddings ({r['corpus']:,} passages, {r['queries']} held-out queries)",
        "",
        f"lshrs {r['lshrs']}, Python {r['python']}, {r['machine']}. MemoryStore; Redis bytes from INFO used_memory.",
        "Reproduce: `.venv/bin/python benchmarks/realdata.py && .venv/bin/python benchmarks/tune.py`.",
        "",
        "| tables | bits | probes | recall@10 | candidates | p50 ms | query_many q/s | Redis B/vector | build vec/s |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for g in r["rows"]:
        lines.append(
            f"| {g['num_tables']} | {g['num_bits']} | {g['num_probes']} | {g['recall_at_10']:.3f} "
            f"| {100 * g['candidates_fraction']:.2f} % | {g['p50_ms']:.2f} | {g['query_many_qps']:,.0f} "
            f"| {g['redis_bytes_per_vector']:.0f} | {g['build_vectors_per_s']:,.0f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
