"""Filtered queries by selectivity: the default, the path before the selectivity estimate, no SQL pushdown.

    .venv/bin/python benchmarks/filters.py [--store sqlite|postgres] [--queries 50]

The real corpus (realdata.py, 121,900 MiniLM vectors) goes into an SQLite
(or Postgres) store with one metadata field ``k``, a uniform random integer
in [0, 100000), and a centroid index at the defaults. For each selectivity s
the filter ``{"k": {"$lt": 100000 s}}`` is run three ways on the same held-out
queries, alternating:

- default: the candidates are walked in code order, reading their rows a
  chunk at a time, until a fifth of the rerank depth passed
  (filters.passing_by_code). The share that passed estimates the filter's
  selectivity near the query: below search.FILTER_SHARE_OK the query probes
  wider, and below that over WIDEN_FACTOR (or when short of top_k) it first
  asks the store's SQL for the filter's matches and ranks them exactly
  (the pushdown).
- before: the path before the estimate: the best rerank-depth candidates by
  code are reranked and filtered; only a query short of top_k reaches the
  pushdown.
- no pushdown: the default without the SQL (search.PUSHDOWN_MAX = 0): it
  probes wider and, still short, scans the store.

Recall@10 is against the exact filtered top-10. Writes
results/filters-STORE.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

import realdata  # noqa: E402
from servers import Postgres, RedisServer, debian_pg_bindir  # noqa: E402

from lshrs import LSHRS, PostgresStore, SQLiteStore, __version__, filters, search  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
SHARES = (0.0005, 0.002, 0.01, 0.05, 0.2, 0.5)
SPAN = 100_000


DEFAULT_PUSHDOWN = search.PUSHDOWN_MAX
DEFAULT_WALK = (filters.PASSING_SHARE_OF_DEPTH, filters.WALK_MAX_DEPTHS)
DEFAULT_SHARE_OK = search.FILTER_SHARE_OK
# way -> (pushdown max, (passing share, walk depths), share below which to probe wider)
WAYS = {
    "default": (DEFAULT_PUSHDOWN, DEFAULT_WALK, DEFAULT_SHARE_OK),
    "before": (DEFAULT_PUSHDOWN, (0.0, 1), 0.0),  # rerank the depth's best by code, then filter
    "no_pushdown": (0, DEFAULT_WALK, DEFAULT_SHARE_OK),
}
LABELS = {"default": "default", "before": "before", "no_pushdown": "no pushdown"}


def run_way(lsh: LSHRS, queries: np.ndarray, flt: dict, way: str) -> tuple[list[list[int]], list[float]]:
    pushdown, walk, share_ok = WAYS[way]
    search.PUSHDOWN_MAX, search.FILTER_SHARE_OK = pushdown, share_ok
    filters.PASSING_SHARE_OF_DEPTH, filters.WALK_MAX_DEPTHS = walk
    found, times = [], []
    for q in queries:
        t0 = time.perf_counter()
        hits = lsh.query(q, top_k=10, filter=flt)
        times.append(time.perf_counter() - t0)
        found.append([h.id for h in hits])
    return found, times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--queries", type=int, default=50)
    args = parser.parse_args()
    _, vectors = realdata.load()
    held, keep = realdata.split_rows(len(vectors), args.queries)
    corpus, queries = vectors[keep], vectors[held]
    k = np.random.default_rng(2).integers(0, SPAN, len(corpus))
    server, pg = RedisServer(), None
    tmp = tempfile.mkdtemp()
    try:
        if args.store == "postgres":
            pg = Postgres(debian_pg_bindir())
            pg.start()
            store = PostgresStore(pg.dsn, table="filters")
        else:
            store = SQLiteStore(os.path.join(tmp, "docs.sqlite3"), table="filters")
        ids = np.arange(len(corpus))
        for lo in range(0, len(corpus), 10_000):
            part = slice(lo, lo + 10_000)
            store.put(ids[part], corpus[part], None, [{"k": int(v)} for v in k[part]])
        lsh = LSHRS(name="filters", redis=redis.Redis.from_url(server.url), store=store)
        lsh.index()
        rows = []
        for share in SHARES:
            flt = {"k": {"$lt": int(SPAN * share)}}
            allowed = np.flatnonzero(k < SPAN * share)
            truth = realdata.exact_neighbours(queries, corpus[allowed], 10)[:, :10]
            truth_ids = [set(allowed[t].tolist()) for t in truth]
            ways = {}
            for way in list(WAYS) * 2:  # alternating: a noisy machine slows them alike
                found, times = run_way(lsh, queries, flt, way)
                ways.setdefault(way, []).append((found, times))
            row = {"share": share, "matches": int(len(allowed))}
            for label, runs in ways.items():
                found = runs[-1][0]
                ms = np.concatenate([t for _, t in runs]) * 1e3
                recall = float(np.mean([len(set(f) & t) / min(10, len(t)) for f, t in zip(found, truth_ids)]))
                row[f"{label}_recall"] = recall
                row[f"{label}_p50_ms"] = float(np.percentile(ms, 50))
                row[f"{label}_p95_ms"] = float(np.percentile(ms, 95))
            print(json.dumps(row), flush=True)
            rows.append(row)
    finally:
        server.stop()
        if pg is not None:
            pg.stop()
    result = {
        "lshrs": __version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared)",
        "store": args.store,
        "pushdown_max": DEFAULT_PUSHDOWN,
        "walk": {"passing_share_of_depth": DEFAULT_WALK[0], "walk_max_depths": DEFAULT_WALK[1]},
        "filter_share_ok": DEFAULT_SHARE_OK,
        "n": int(len(corpus)),
        "queries": int(len(queries)),
        "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = f"filters-{args.store}"
    (RESULTS / f"{out}.json").write_text(json.dumps(result, indent=2))
    (RESULTS / f"{out}.md").write_text(markdown(result))
    print((RESULTS / f"{out}.md").read_text())


def markdown(r: dict) -> str:
    lines = [
        f"# Filtered queries by selectivity: the default, before the selectivity estimate, no pushdown ({r['store']})",
        "",
        f"lshrs {r['lshrs']}, Python {r['python']}, {r['machine']}. {r['n']:,} real MiniLM vectors, "
        f"{r['queries']} held-out queries, top-10, centroid index at the defaults; the three ways alternate, "
        f"two rounds each; pushdown up to {r['pushdown_max']:,} matches. The ways are described in "
        "benchmarks/filters.py. Reproduce: `.venv/bin/python benchmarks/filters.py"
        + ("" if r["store"] == "sqlite" else " --store postgres")
        + "`.",
        "",
        "| share passing | matches | "
        + " | ".join(f"{LABELS[w]} recall | {LABELS[w]} p50 ms | {LABELS[w]} p95 ms" for w in WAYS)
        + " |",
        "| ---: | ---: |" + " ---: | ---: | ---: |" * len(WAYS),
    ]
    for x in r["rows"]:
        cells = [f"{x[f'{w}_recall']:.3f} | {x[f'{w}_p50_ms']:.1f} | {x[f'{w}_p95_ms']:.1f}" for w in WAYS]
        lines.append(f"| {100 * x['share']:g} % | {x['matches']:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
