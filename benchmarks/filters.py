"""Filtered queries by selectivity: with the SQL pushdown (the default) and without it.

    .venv/bin/python benchmarks/filters.py [--store sqlite|postgres] [--queries 50]

The real corpus (realdata.py, 121,900 MiniLM vectors) goes into an SQLite
(or Postgres) store with one metadata field ``k``, a uniform random integer
in [0, 100000), and a centroid index at the defaults. For each selectivity s
the filter ``{"k": {"$lt": 100000 s}}`` is run both ways on the same held-out
queries, alternating. Both first filter the candidates; a query that finds
fewer than top_k passing then either asks the store's SQL for the matches
and ranks them exactly (pushdown, search.PUSHDOWN_MAX at its default), or
probes wider and finally scans the store (PUSHDOWN_MAX = 0, the path before
pushdown existed). Recall@10 is against the exact filtered top-10. Writes
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

from lshrs import LSHRS, PostgresStore, SQLiteStore, __version__, search  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
SHARES = (0.0005, 0.002, 0.01, 0.05, 0.2, 0.5)
SPAN = 100_000


DEFAULT_PUSHDOWN = search.PUSHDOWN_MAX


def run_way(lsh: LSHRS, queries: np.ndarray, flt: dict, pushdown: bool) -> tuple[list[list[int]], list[float]]:
    search.PUSHDOWN_MAX = DEFAULT_PUSHDOWN if pushdown else 0
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
            for pushdown in (True, False, True, False):  # alternating: a noisy machine slows both alike
                found, times = run_way(lsh, queries, flt, pushdown)
                ways.setdefault(pushdown, []).append((found, times))
            row = {"share": share, "matches": int(len(allowed))}
            for pushdown, runs in ways.items():
                found = runs[-1][0]
                ms = np.concatenate([t for _, t in runs]) * 1e3
                recall = float(np.mean([len(set(f) & t) / min(10, len(t)) for f, t in zip(found, truth_ids)]))
                label = "pushdown" if pushdown else "no_pushdown"
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
        f"# Filtered queries by selectivity, with and without the SQL pushdown ({r['store']})",
        "",
        f"lshrs {r['lshrs']}, Python {r['python']}, {r['machine']}. {r['n']:,} real MiniLM vectors, "
        f"{r['queries']} held-out queries, top-10, centroid index at the defaults; the two ways alternate, "
        f"two rounds each; pushdown up to {r['pushdown_max']:,} matches. "
        "Reproduce: `.venv/bin/python benchmarks/filters.py"
        + ("" if r["store"] == "sqlite" else " --store postgres")
        + "`.",
        "",
        "| share passing | matches | pushdown recall | pushdown p50 ms | pushdown p95 ms "
        "| no-pushdown recall | no-pushdown p50 ms | no-pushdown p95 ms |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for x in r["rows"]:
        lines.append(
            f"| {100 * x['share']:g} % | {x['matches']:,} | {x['pushdown_recall']:.3f} | {x['pushdown_p50_ms']:.1f} "
            f"| {x['pushdown_p95_ms']:.1f} | {x['no_pushdown_recall']:.3f} | {x['no_pushdown_p50_ms']:.1f} "
            f"| {x['no_pushdown_p95_ms']:.1f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
