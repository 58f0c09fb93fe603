"""Core figures: Redis bytes per entry, ingest rate, query latency per store, recall@10.

Run:  .venv/bin/python benchmarks/core.py [--n 100000] [--dim 384]
Writes benchmarks/results/core.json and core.md. Starts its own Redis and
Postgres on free loopback ports and stops them. Vectors are clustered
synthetic (real-embedding runs live in the comparison harness).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from servers import Postgres, RedisServer, debian_pg_bindir  # noqa: E402

from lshrs import LSHRS, MemoryStore, PostgresStore, RedisStore, SQLiteStore, __version__  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def clustered(n: int, dim: int, seed: int = 0, clusters: int = 1000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    labels = rng.integers(0, clusters, n)
    return centres[labels] + 0.6 * rng.standard_normal((n, dim)).astype(np.float32)


def workload(n: int, dim: int, n_queries: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clustered corpus, held-out queries from the same clusters, and each query's exact top-10 rows."""
    data = clustered(n + n_queries, dim)
    vectors, queries = data[:n], data[n:]
    qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    vn = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors, queries, np.argsort(-(qn @ vn.T), axis=1)[:, :10]


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def settled_memory(client: redis.Redis, timeout: float = 10.0) -> int:
    """used_memory once it stops moving (two readings 0.5 s apart within 0.1 %).

    Right after a build Redis still holds about 60 bytes per vector of a
    122k-vector centroid build in buffers it releases within two seconds
    (seen as 133 B/vector at once, 72.9 two seconds later, where MEMORY USAGE
    of the index's keys sums to 72.7).
    """
    deadline = time.monotonic() + timeout
    last = int(client.info("memory")["used_memory"])
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = int(client.info("memory")["used_memory"])
        if abs(now - last) <= 0.001 * max(last, 1):
            return now
        last = now
    return last


def bucket_memory(url: str, vectors: np.ndarray) -> dict:
    """Bytes per (vector, table) entry: lshrs' layout against the simple alternatives, same entries."""
    client = redis.Redis.from_url(url)
    client.flushall()
    base = used_memory(client)
    lsh = LSHRS(name="mem", redis=client, store=MemoryStore())
    t0 = time.perf_counter()
    lsh.index(np.arange(len(vectors)), vectors)
    build_s = time.perf_counter() - t0
    packed = used_memory(client) - base
    tables = lsh.params["num_tables"]
    entries = len(vectors) * tables
    buckets = lsh.stats()["buckets"]
    codes = lsh.hasher.codes(vectors)  # type: ignore[union-attr]
    client.flushall()
    width = lsh.params["id_bytes"]
    return {
        "vectors": len(vectors),
        "tables": tables,
        "buckets": buckets,
        "id_bytes": width,
        "packed_bytes_per_entry": packed / entries,
        "packed_bytes_per_vector": packed / len(vectors),
        "string_per_bucket_bytes_per_entry": _alternative(client, codes, "string", width) / entries,
        "sets_bytes_per_entry": _alternative(client, codes, "set", width) / entries,
        "bucket_build_vectors_per_s": len(vectors) / build_s,
    }


def _alternative(client: redis.Redis, codes: np.ndarray, kind: str, width: int) -> int:
    """Redis memory of the same buckets as one key each: a packed string or a set of ids."""
    base = used_memory(client)
    pipe = client.pipeline(transaction=False)
    for t in range(codes.shape[1]):
        order = np.argsort(codes[:, t], kind="stable")
        starts = np.flatnonzero(np.r_[True, np.diff(codes[order, t]) != 0])
        for lo, hi in zip(starts, np.r_[starts[1:], len(order)]):
            key = f"alt:{t}:{codes[order[lo], t]}"
            if kind == "set":
                pipe.sadd(key, *order[lo:hi].tolist())
            else:
                pipe.set(key, order[lo:hi].astype(f"<i{width}").tobytes())
        pipe.execute()
    used = used_memory(client) - base
    client.flushall()
    return used


def parameter_grid(url: str, vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray) -> list[dict]:
    """Memory, candidates and recall for a few (tables, bits, probes) around the defaults (MemoryStore)."""
    client = redis.Redis.from_url(url)
    rows = []
    for tables, bits, probes in [(12, 12, 12), (12, 13, 12), (12, 14, 12), (8, 12, 16), (16, 14, 16), (12, 13, 24)]:
        client.flushall()
        base = used_memory(client)
        store = MemoryStore()
        store.put(np.arange(len(vectors)), vectors)
        lsh = LSHRS(name="grid", redis=client, store=store, num_tables=tables, num_bits=bits, num_probes=probes)
        lsh.index(np.arange(len(vectors)), vectors)
        mem = used_memory(client) - base
        t0 = time.perf_counter()
        hits = lsh.query_many(queries, top_k=10)
        qps = len(queries) / (time.perf_counter() - t0)
        recall = np.mean([len({h.id for h in row} & set(t.tolist())) / 10 for row, t in zip(hits, truth)])
        cands = lsh.candidate_counts(queries, num_probes=probes).mean()
        row = {
            "num_tables": tables,
            "num_bits": bits,
            "num_probes": probes,
            "recall_at_10": float(recall),
            "candidates_fraction": float(cands / len(vectors)),
            "bytes_per_vector": mem / len(vectors),
            "bytes_per_entry": mem / (len(vectors) * tables),
            "query_many_qps": qps,
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    client.flushall()
    return rows


def measure_store(label: str, lsh: LSHRS, vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray) -> dict:
    t0 = time.perf_counter()
    for lo in range(0, len(vectors), 10_000):
        lsh.ingest(vectors=vectors[lo : lo + 10_000], ids=np.arange(lo, min(lo + 10_000, len(vectors))))
    ingest_s = time.perf_counter() - t0
    lsh.query(queries[0], top_k=10)  # warm up (prepared statements, caches)
    times, found = [], []
    for q in queries:
        t0 = time.perf_counter()
        hits = lsh.query(q, top_k=10)
        times.append(time.perf_counter() - t0)
        found.append([h.id for h in hits])
    t0 = time.perf_counter()
    lsh.query_many(queries, top_k=10)
    many_s = time.perf_counter() - t0
    recall = np.mean([len(set(f) & set(t.tolist())) / 10 for f, t in zip(found, truth)])
    candidates = lsh.candidate_counts(queries)
    ms = np.array(times) * 1e3
    row = {
        "store": label,
        "ingest_vectors_per_s": len(vectors) / ingest_s,
        "query_p50_ms": float(np.percentile(ms, 50)),
        "query_p95_ms": float(np.percentile(ms, 95)),
        "query_many_qps": len(queries) / many_s,
        "recall_at_10": float(recall),
        "candidates_per_query_mean": float(candidates.mean()),
        "candidates_fraction": float(candidates.mean() / len(vectors)),
    }
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()

    vectors, queries, truth = workload(args.n, args.dim, args.queries)

    rs = RedisServer()
    pg = Postgres(debian_pg_bindir())
    pg.start()
    tmp = Path("/tmp/lshrs-bench")
    tmp.mkdir(exist_ok=True)
    try:
        memory = bucket_memory(rs.url, vectors)
        print(json.dumps(memory), flush=True)
        grid = parameter_grid(rs.url, vectors, queries, truth)
        client = redis.Redis.from_url(rs.url)
        stores = {
            "memory": MemoryStore(),
            "sqlite": SQLiteStore(tmp / f"bench-{time.time_ns()}.sqlite3", table="docs"),
            "postgres (bytea)": PostgresStore(pg.dsn, table="docs_bytea"),
            "postgres (real[])": PostgresStore(pg.dsn, table="docs_real", vector_type="real[]"),
            "redis hashes": RedisStore(client, name="bench"),
        }
        rows = []
        for label, store in stores.items():
            client.flushall()
            lsh = LSHRS(name="bench", redis=client, store=store)
            rows.append(measure_store(label, lsh, vectors, queries, truth))
    finally:
        rs.stop()
        pg.stop()
    params = {"num_tables": 12, "num_bits": 14, "num_probes": 12}
    report = {
        "lshrs": __version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, 2 cores (shared)",
        "n": args.n,
        "dim": args.dim,
        "params": params,
        "memory": memory,
        "grid": grid,
        "stores": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "core.json").write_text(json.dumps(report, indent=2))
    (RESULTS / "core.md").write_text(markdown(report))
    print((RESULTS / "core.md").read_text())


def markdown(r: dict) -> str:
    m = r["memory"]
    lines = [
        f"# Core figures ({r['n']:,} clustered synthetic {r['dim']}-d vectors)",
        "",
        f"lshrs {r['lshrs']}, Python {r['python']}, {r['machine']}. Defaults: {r['params']}.",
        "Reproduce: `.venv/bin/python benchmarks/core.py`.",
        "",
        "## Redis memory (INFO used_memory delta)",
        "",
        f"- lshrs (listpack hash fields + strings for large buckets, {m['id_bytes']}-byte ids): "
        f"{m['packed_bytes_per_entry']:.2f} bytes per (vector, table) entry, "
        f"{m['packed_bytes_per_vector']:.0f} bytes per vector, {m['buckets']:,} buckets",
        f"- one packed string per bucket, same entries: {m['string_per_bucket_bytes_per_entry']:.2f} bytes per entry",
        f"- one Redis set per bucket, same entries: {m['sets_bytes_per_entry']:.2f} bytes per entry",
        f"- bucket build from arrays: {m['bucket_build_vectors_per_s']:,.0f} vectors/s",
        "",
        "## Parameter grid (MemoryStore, query_many)",
        "",
        "| tables | bits | probes | recall@10 | candidates | Redis bytes/vector | bytes/entry | q/s |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *[
            f"| {g['num_tables']} | {g['num_bits']} | {g['num_probes']} | {g['recall_at_10']:.3f} "
            f"| {100 * g['candidates_fraction']:.2f} % | {g['bytes_per_vector']:.0f} | {g['bytes_per_entry']:.1f} "
            f"| {g['query_many_qps']:,.0f} |"
            for g in r["grid"]
        ],
        "",
        "## Per store (ingest = store write + bucket write, vectors already embedded)",
        "",
        "| store | ingest vec/s | query p50 ms | query p95 ms | query_many q/s | recall@10 | candidates/query |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in r["stores"]:
        lines.append(
            f"| {s['store']} | {s['ingest_vectors_per_s']:,.0f} | {s['query_p50_ms']:.2f} | {s['query_p95_ms']:.2f} "
            f"| {s['query_many_qps']:,.0f} | {s['recall_at_10']:.3f} | {s['candidates_per_query_mean']:,.0f} "
            f"({100 * s['candidates_fraction']:.2f} %) |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
