"""Sustained concurrent query load: P client processes on one Redis and one Postgres.

Run:  .venv/bin/python benchmarks/load.py [--n 100000] [--processes 4,1] [--duration 60]

Builds an index of N clustered synthetic vectors (rows written to Postgres
through PostgresStore.put, then `LSHRS.index()` over the table: the bulk
path), then for each P runs P processes (multiprocessing, spawn), each with
its own `LSHRS` attached by name to the same Redis and Postgres, issuing
single-vector queries (top_k=10; noisy copies of corpus rows) for D seconds.
Records every query's latency and counts exceptions instead of raising them.
Writes benchmarks/results/load.json and load.md. Starts its own Redis and
Postgres (fsync=off) on free loopback ports and stops them.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

from core import clustered  # noqa: E402
from servers import Postgres, RedisServer, debian_pg_bindir  # noqa: E402

from lshrs import LSHRS, PostgresStore, __version__  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
NAME = "load"
TABLE = "load_docs"


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process on this machine (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def redis_cpu_s(url: str) -> float:
    info = redis.Redis.from_url(url).info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def build(redis_url: str, dsn: str, vectors: np.ndarray, batch: int) -> dict:
    """Rows into Postgres in batches, then the buckets by index() over the table."""
    store = PostgresStore(dsn, table=TABLE)
    t0 = time.perf_counter()
    for lo in range(0, len(vectors), batch):
        store.put(np.arange(lo, min(lo + batch, len(vectors))), vectors[lo : lo + batch])
    put_s = time.perf_counter() - t0
    lsh = LSHRS(name=NAME, redis_url=redis_url, store=store)
    t0 = time.perf_counter()
    lsh.index()
    index_s = time.perf_counter() - t0
    stats = lsh.stats()
    lsh.close()
    store.close()
    return {
        "store_put_s": put_s,
        "store_rows_per_s": len(vectors) / put_s,
        "index_s": index_s,
        "index_rows_per_s": len(vectors) / index_s,
        "indexed": stats["count"],
        "params": {k: stats[k] for k in ("num_tables", "num_bits", "num_probes", "id_bytes")},
        "bucket_size_mean": stats["bucket_size"]["mean"],
    }


def client(
    rank: int, redis_url: str, dsn: str, queries: np.ndarray, sources: np.ndarray, duration: float,
    barrier: Any, out: Any,
) -> None:  # fmt: skip
    """One client process: attach by name, warm up, wait for the others, then query until the deadline.

    Also reports the CPU time spent in this process and in its Postgres backend over the run.
    """
    store = PostgresStore(dsn, table=TABLE, create=False)
    backend = store._conn.info.backend_pid
    lsh = LSHRS(name=NAME, redis_url=redis_url, store=store)
    for q in queries[:5]:
        lsh.query(q, top_k=10)
    order = np.random.default_rng(rank).permutation(len(queries))
    latencies: list[float] = []
    errors: dict[str, int] = {}
    self_hits = 0
    barrier.wait()
    cpu0, pg0 = time.process_time(), proc_cpu_s(backend)
    start = time.perf_counter()
    deadline = start + duration
    i = 0
    while time.perf_counter() < deadline:
        j = int(order[i % len(order)])
        i += 1
        t0 = time.perf_counter()
        try:
            hits = lsh.query(queries[j], top_k=10)
        except Exception as exc:  # counted, not raised: the figure is the error count
            kind = f"{type(exc).__name__}: {exc}"[:200]
            errors[kind] = errors.get(kind, 0) + 1
            continue
        latencies.append(time.perf_counter() - t0)
        self_hits += any(h.id == sources[j] for h in hits)
    elapsed = time.perf_counter() - start
    cpu = {"client_cpu_s": time.process_time() - cpu0, "postgres_cpu_s": proc_cpu_s(backend) - pg0}
    out.put(
        {"rank": rank, "elapsed_s": elapsed, "latencies": latencies, "errors": errors, "self_hits": self_hits, **cpu}
    )
    lsh.close()


def run_load(redis_url: str, dsn: str, processes: int, duration: float, queries: np.ndarray, sources: np.ndarray):
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(processes + 1), ctx.Queue()
    procs = [
        ctx.Process(target=client, args=(r, redis_url, dsn, queries, sources, duration, barrier, out))
        for r in range(processes)
    ]
    for p in procs:
        p.start()
    barrier.wait(timeout=300)
    load_start, redis0 = load_average(), redis_cpu_s(redis_url)
    t0 = time.perf_counter()
    parts = [out.get(timeout=duration + 300) for _ in procs]
    wall = time.perf_counter() - t0
    redis_cpu = redis_cpu_s(redis_url) - redis0
    for p in procs:
        p.join(30)
    row = summarize(processes, duration, wall, parts, load_start, load_average())
    cpu = {
        "client": sum(p["client_cpu_s"] for p in parts),
        "postgres": sum(p["postgres_cpu_s"] for p in parts),
        "redis": redis_cpu,
    }
    row["cpu_ms_per_query"] = {k: 1e3 * v / max(row["queries"], 1) for k, v in cpu.items()}
    row["cpu_ms_per_query"]["total"] = sum(row["cpu_ms_per_query"].values())
    row["cpu_cores_used"] = sum(cpu.values()) / wall
    print(json.dumps({"cpu_ms_per_query": row["cpu_ms_per_query"], "cpu_cores_used": row["cpu_cores_used"]}))
    return row


def summarize(processes: int, duration: float, wall: float, parts: list[dict], load_start, load_end) -> dict:
    parts.sort(key=lambda p: p["rank"])
    lat = np.concatenate([np.asarray(p["latencies"]) for p in parts]) * 1e3
    errors: dict[str, int] = {}
    for p in parts:
        for kind, count in p["errors"].items():
            errors[kind] = errors.get(kind, 0) + count
    total = len(lat) + sum(errors.values())
    row = {
        "processes": processes,
        "duration_s": duration,
        "wall_s": wall,
        "queries": int(len(lat)),
        "errors": int(sum(errors.values())),
        "error_kinds": errors,
        "qps": len(lat) / wall,
        "p50_ms": float(np.percentile(lat, 50)),
        "p95_ms": float(np.percentile(lat, 95)),
        "p99_ms": float(np.percentile(lat, 99)),
        "max_ms": float(lat.max()),
        "mean_ms": float(lat.mean()),
        "per_process_qps": [len(p["latencies"]) / p["elapsed_s"] for p in parts],
        "self_hit_rate": sum(p["self_hits"] for p in parts) / max(len(lat), 1),
        "attempted": int(total),
        "loadavg_start": load_start,
        "loadavg_end": load_end,
    }
    print(json.dumps({k: v for k, v in row.items() if k != "error_kinds"}), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--processes", default="4,1", help="comma-separated client process counts, one run each")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load per run")
    parser.add_argument("--pool", type=int, default=5_000, help="distinct query vectors")
    parser.add_argument("--noise", type=float, default=0.3, help="std of the noise added to a corpus row per dim")
    parser.add_argument("--batch", type=int, default=10_000, help="rows per PostgresStore.put")
    args = parser.parse_args()

    vectors = clustered(args.n, args.dim)
    rng = np.random.default_rng(1)
    sources = rng.choice(args.n, args.pool, replace=False)
    queries = (vectors[sources] + args.noise * rng.standard_normal((args.pool, args.dim))).astype(np.float32)

    report: dict[str, Any] = {
        "lshrs": __version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, shared with other jobs",
        "n": args.n,
        "dim": args.dim,
        "noise": args.noise,
        "pool": args.pool,
        "loadavg_before": load_average(),
    }
    rs = RedisServer()
    pg = Postgres(debian_pg_bindir())
    pg.start()
    try:
        report["build"] = build(rs.url, pg.dsn, vectors, args.batch)
        print(json.dumps(report["build"]), flush=True)
        report["runs"] = [
            run_load(rs.url, pg.dsn, int(p), args.duration, queries, sources) for p in args.processes.split(",")
        ]
    finally:
        rs.stop()
        pg.stop()
    report["loadavg_after"] = load_average()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "load.json").write_text(json.dumps(report, indent=2))
    (RESULTS / "load.md").write_text(markdown(report))
    print((RESULTS / "load.md").read_text())


def markdown(r: dict) -> str:
    b = r["build"]
    lines = [
        f"# Sustained query load ({r['n']:,} clustered synthetic {r['dim']}-d vectors, Postgres bytea)",
        "",
        f"lshrs {r['lshrs']}, Python {r['python']}, {r['machine']}. Index parameters {b['params']}.",
        f"Reproduce: `.venv/bin/python benchmarks/load.py --n {r['n']} --duration {r['runs'][0]['duration_s']:g}`.",
        "",
        "One Redis 7 (no persistence) and one Postgres (`fsync=off`, a test setting) on the same machine as the",
        "clients, so clients and servers share its cores. Each client is a process with its own `LSHRS`",
        "attached by name; a query is `lsh.query(vector, top_k=10)` (rerank every candidate) for a noisy",
        f"copy of a corpus row (noise std {r['noise']} per dimension; cluster spread 0.6), {r['pool']:,} distinct.",
        "Latency is per query, measured in the client; exceptions are counted, not raised.",
        "",
        f"Build: PostgresStore.put {b['store_rows_per_s']:,.0f} rows/s, then `index()` over the table "
        f"{b['index_rows_per_s']:,.0f} rows/s (mean bucket {b['bucket_size_mean']:.1f} ids).",
        f"Load average (1, 5, 15 min) before the run {r['loadavg_before']}, after {r['loadavg_after']}.",
        "",
        "| processes | seconds | queries | errors | total q/s | p50 ms | p95 ms | p99 ms | max ms "
        "| q/s per process | source row in top 10 | load avg at start / end |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |",
    ]
    for s in r["runs"]:
        per = ", ".join(f"{q:.1f}" for q in s["per_process_qps"])
        lines.append(
            f"| {s['processes']} | {s['wall_s']:.0f} | {s['queries']:,} | {s['errors']} | {s['qps']:.1f} "
            f"| {s['p50_ms']:.1f} | {s['p95_ms']:.1f} | {s['p99_ms']:.1f} | {s['max_ms']:.0f} | {per} "
            f"| {100 * s['self_hit_rate']:.1f} % | {s['loadavg_start'][0]} / {s['loadavg_end'][0]} |"
        )
    lines += [
        "",
        "CPU per query, from /proc (each client process and its Postgres backend) and Redis INFO cpu, over the",
        "same window; cores used = all of it / wall time. On 2 cores the ceiling is about 2,000 / total ms q/s.",
        "",
        "| processes | client ms | Postgres ms | Redis ms | total ms | cores used |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in r["runs"]:
        c = s["cpu_ms_per_query"]
        lines.append(
            f"| {s['processes']} | {c['client']:.1f} | {c['postgres']:.1f} | {c['redis']:.2f} | {c['total']:.1f} "
            f"| {s['cpu_cores_used']:.2f} |"
        )
    for s in r["runs"]:
        for kind, count in s["error_kinds"].items():
            lines.append(f"\n- P={s['processes']}: {count} x `{kind}`")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
