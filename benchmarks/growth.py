"""How a centroid index's query cost grows with the corpus, on real embeddings.

    .venv/bin/python benchmarks/growth.py [--sizes 30000 60000 121700] [--queries 400] [--nlist-scale 1]

For each size, N documents of realdata.py's corpus (the first N of one fixed random order) go into a
MemoryStore and a centroid index (nlist = default_nlist(N) x --nlist-scale)
is built on a fresh Redis. `LSHRS.tune(apply=True)` then picks probes and
rerank depth for recall@10 0.95 on one half of the held-out queries (as a
user would, with their own queries), and the other half measures the
result, against its exact top-10 within those N documents. It
records recall@10, candidates (bucket entries whose codes a query scores),
the vectors it reranks, p50 / p95 of single queries and Redis bytes per
vector, then fits candidates ~ n^a and p50 ~ n^b by least squares on the
logs and projects both to 6.4 million and 45 million vectors (the English
Wikipedia articles and passages). Writes results/OUT.json and OUT.md (default growth).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

import realdata  # noqa: E402
from core import settled_memory  # noqa: E402
from servers import RedisServer  # noqa: E402

from lshrs import LSHRS, MemoryStore, __version__  # noqa: E402
from lshrs.centroids import default_nlist, default_probes  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
TARGETS = {"English Wikipedia articles": 6_400_000, "English Wikipedia passages": 45_000_000}
TIMED = 100
TARGET = 0.95


def measure(size: int, corpus: np.ndarray, held: np.ndarray, nlist_scale: float) -> dict:
    """One size on its own Redis: build, tune, then recall, candidates, latency and memory."""
    vectors = corpus[:size]
    tuning, queries = held[len(held) // 2 :], held[: len(held) // 2]
    truth = realdata.exact_neighbours(queries, vectors, 10)[:, :10]
    nlist = max(1, round(default_nlist(size) * nlist_scale))
    server = RedisServer()
    try:
        client = redis.Redis.from_url(server.url)
        store = MemoryStore()
        store.put(np.arange(size), vectors)
        base = client.info("memory")["used_memory"]
        lsh = LSHRS(name="growth", redis=client, store=store, nlist=nlist)
        started = time.perf_counter()
        lsh.index()
        build_s = time.perf_counter() - started
        used = settled_memory(client) - base  # Redis releases the write's buffers within a couple of seconds
        defaults = lsh.query_many(queries, top_k=10)
        tuned = lsh.tune(tuning, target_recall=TARGET, apply=True)
        print(tuned.table(), file=sys.stderr)
        hits = lsh.query_many(queries, top_k=10)
        recall = recall_at_10(hits, truth)
        candidates = lsh.candidate_counts(queries).astype(float)
        times = []
        for q in queries[: TIMED + 1]:
            t0 = time.perf_counter()
            lsh.query(q, top_k=10)
            times.append(time.perf_counter() - t0)
        ms = np.array(times[1:]) * 1e3
        return {
            "n": size,
            "nlist": nlist,
            "num_probes": lsh.num_probes,
            "rerank_depth": lsh.rerank_depth,
            "tuned": tuned.met,
            "default_probes": default_probes(nlist),
            "recall_at_default": recall_at_10(defaults, truth),
            "recall_at_10": recall,
            "candidates": float(candidates.mean()),
            "candidates_fraction": float(candidates.mean() / size),
            "reranked": float(np.minimum(candidates, lsh.rerank_depth).mean()),
            "p50_ms": float(np.percentile(ms, 50)),
            "p95_ms": float(np.percentile(ms, 95)),
            "build_vectors_per_s": size / build_s,
            "redis_bytes_per_vector": used / size,
        }
    finally:
        server.stop()


def recall_at_10(hits: list, truth: np.ndarray) -> float:
    return float(np.mean([len({h.id for h in row} & set(t)) / 10 for row, t in zip(hits, truth.tolist())]))


def fit(rows: list[dict], key: str) -> tuple[float, float]:
    """(exponent, constant) of key ~ constant * n^exponent, least squares on the logs."""
    slope, intercept = np.polyfit(np.log([r["n"] for r in rows]), np.log([r[key] for r in rows]), 1)
    return float(slope), float(np.exp(intercept))


def cost_model(rows: list[dict]) -> tuple[float, float]:
    """(fixed ms, ms per candidate) of p50 = fixed + per * candidates, least squares over the rows.

    A power law fitted to p50 itself would let the fixed per-query cost
    (Python, the round trip, the rerank), which dominates at these sizes,
    hide how the candidate work grows.
    """
    per, fixed = np.polyfit([r["candidates"] for r in rows], [r["p50_ms"] for r in rows], 1)
    return float(fixed), float(per)


def markdown(r: dict) -> str:
    scale = r.get("nlist_scale", 1.0)
    nlist = "default_nlist(n)" + ("" if scale == 1 else f" x {scale:g}")
    lines = [
        f"# Growth of a centroid index's query cost: {len(r['rows'])} sizes of the real MiniLM corpus",
        "",
        f"lshrs {r['lshrs']}, Python {r['python']}, {r['machine']}; load average {r['load'][0]:.2f}. "
        f"{r['queries']} held-out queries: half tune, half measure (the first {TIMED} timed one at a time); "
        f"MemoryStore; nlist = {nlist}; probes and rerank depth picked by `tune(apply=True)` for "
        f"recall@10 {TARGET} on the tuning half.",
        f"Reproduce: `.venv/bin/python benchmarks/growth.py{r.get('command', '')}`.",
        "",
        "| n | nlist | probes (default) | recall@10 (default) | probes (tuned) | depth | recall@10 | candidates "
        "| share | reranked | p50 ms | p95 ms | Redis B/vector |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for x in r["rows"]:
        lines.append(
            f"| {x['n']:,} | {x['nlist']:,} | {x['default_probes']} | {x['recall_at_default']:.3f} "
            f"| {x['num_probes']} | {x['rerank_depth']} "
            f"| {x['recall_at_10']:.3f} | {x['candidates']:,.0f} | {100 * x['candidates_fraction']:.2f} % "
            f"| {x['reranked']:,.0f} | {x['p50_ms']:.2f} | {x['p95_ms']:.2f} | {x['redis_bytes_per_vector']:.0f} |"
        )
    a, b = r["fit"]["candidates"], r["fit"]["p50_ms"]
    model = r["cost_model"]
    lines += [
        "",
        f"Fitted over these sizes: candidates ~ n^{a[0]:.2f}, p50 ~ n^{b[0]:.2f} (least squares on the logs); "
        f"p50 = {model['fixed_ms']:.2f} ms + {1e3 * model['ms_per_candidate']:.3f} µs per candidate "
        "(least squares).",
        "",
        "| projected to | n | candidates | p50 ms (fixed + per candidate) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for label, n in TARGETS.items():
        p = r["projection"][label]
        lines.append(f"| {label} | {n:,} | {p['candidates']:,.0f} | {p['p50_ms']:.0f} |")
    lines += [
        "",
        "The projection carries a fit over a 4x range of sizes 50-370x further: read it as the shape of the",
        "growth, not a promise.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[30_000, 60_000, 121_700])
    parser.add_argument("--queries", type=int, default=400, help="held out: half tune, half measure")
    parser.add_argument("--nlist-scale", type=float, default=1.0, help="nlist = default_nlist(n) x this")
    parser.add_argument("--out", default="growth", help="results/OUT.json and OUT.md")
    args = parser.parse_args()
    _, vectors = realdata.load()
    held, keep = realdata.split_rows(len(vectors), args.queries)
    # Each size is a uniform sample of the corpus (its rows in a fixed random order), so the sizes differ in
    # how many vectors there are and not in which sources they come from (the corpus lists them source by source).
    corpus, queries = vectors[np.random.default_rng(1).permutation(keep)], vectors[held]
    load = os.getloadavg()
    rows = []
    for size in args.sizes:
        row = measure(min(size, len(corpus)), corpus, queries, args.nlist_scale)
        print(json.dumps(row), flush=True)
        rows.append(row)
    fits = {key: fit(rows, key) for key in ("candidates", "p50_ms")}
    fixed, per = cost_model(rows)
    a, c = fits["candidates"]
    projection = {label: {"candidates": c * n**a, "p50_ms": fixed + per * c * n**a} for label, n in TARGETS.items()}
    result = {
        "lshrs": __version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared)",
        "load": load,
        "queries": len(queries),
        "nlist_scale": args.nlist_scale,
        "command": "".join(f" {a}" for a in sys.argv[1:]),
        "rows": rows,
        "fit": fits,
        "cost_model": {"fixed_ms": fixed, "ms_per_candidate": per},
        "projection": projection,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(result, indent=2))
    (RESULTS / f"{args.out}.md").write_text(markdown(result))
    print((RESULTS / f"{args.out}.md").read_text())


if __name__ == "__main__":
    main()
