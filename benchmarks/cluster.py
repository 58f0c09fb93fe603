"""A 3-shard Redis Cluster against one standalone Redis, same data, same run.

Run:  .venv/bin/python benchmarks/cluster.py [--n 100000] [--dim 384] [--queries 200]
Writes benchmarks/results/cluster.json and cluster.md. Starts Debian's
redis-server as a 3-master cluster (redis-cli --cluster create) and as one
standalone server, on free loopback ports, with the helpers the tests use,
and stops them. Vectors: clustered synthetic (benchmarks/core.py). A
MemoryStore keeps the documents, so the figures are the Redis side: bucket
build, keys and memory per shard, query latency.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks"), str(ROOT / "tests")]

from core import workload  # noqa: E402
from servers import RedisClusterServer, RedisServer  # noqa: E402

from lshrs import LSHRS, MemoryStore, __version__  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def nodes(client: Any) -> dict[str, redis.Redis]:
    """Every server holding data: the cluster's primaries, or the one standalone server."""
    if isinstance(client, redis.RedisCluster):
        return {node.name: node.redis_connection for node in client.get_primaries()}
    kwargs = client.connection_pool.connection_kwargs
    return {f"{kwargs['host']}:{kwargs['port']}": client}


def used_memory(client: Any) -> dict[str, int]:
    return {name: int(node.info("memory")["used_memory"]) for name, node in nodes(client).items()}


def build(client: Any, vectors: np.ndarray) -> tuple[LSHRS, dict]:
    """Bucket build from arrays (the store already holds the rows), with keys and memory per server."""
    store = MemoryStore()
    ids = np.arange(len(vectors))
    store.put(ids, vectors)
    before = used_memory(client)
    lsh = LSHRS(name="bench", redis=client, store=store)
    t0 = time.perf_counter()
    lsh.index(ids, vectors)
    build_s = time.perf_counter() - t0
    after = used_memory(client)
    delta = {name: after[name] - before[name] for name in after}
    keys = {name: int(node.dbsize()) for name, node in nodes(client).items()}
    total = sum(delta.values())
    shards = [
        {"node": name, "keys": keys[name], "used_memory_delta": delta[name], "memory_share": delta[name] / total}
        for name in sorted(delta)
    ]
    return lsh, {
        "build_vectors_per_s": len(vectors) / build_s,
        "used_memory_delta": total,
        "bytes_per_vector": total / len(vectors),
        "keys": sum(keys.values()),
        "shards": shards,
    }


def queries_timed(indexes: dict[str, LSHRS], queries: np.ndarray, truth: np.ndarray) -> dict[str, dict]:
    """Query latency of every index, interleaved query by query so that load from elsewhere hits all alike."""
    for lsh in indexes.values():
        lsh.query(queries[0], top_k=10)  # warm: connections to every node
    times: dict[str, list[float]] = {label: [] for label in indexes}
    found: dict[str, list[list[int]]] = {label: [] for label in indexes}
    for q in queries:
        for label, lsh in indexes.items():
            t0 = time.perf_counter()
            found[label].append([h.id for h in lsh.query(q, top_k=10)])
            times[label].append(time.perf_counter() - t0)
    many: dict[str, list[float]] = {label: [] for label in indexes}
    for _ in range(3):
        for label, lsh in indexes.items():
            t0 = time.perf_counter()
            lsh.query_many(queries, top_k=10)
            many[label].append(time.perf_counter() - t0)
    return {label: _latency(times[label], min(many[label]), found[label], truth) for label in indexes}


def _latency(times: list[float], many_s: float, found: list[list[int]], truth: np.ndarray) -> dict:
    ms = np.array(times) * 1e3
    return {
        "query_p50_ms": float(np.percentile(ms, 50)),
        "query_p95_ms": float(np.percentile(ms, 95)),
        "query_many_qps": len(found) / many_s,
        "recall_at_10": float(np.mean([len(set(f) & set(t.tolist())) / 10 for f, t in zip(found, truth)])),
        "found": found,
    }


def ingest_rate(lsh: LSHRS, vectors: np.ndarray, batch: int = 10_000) -> float:
    """ingest() in batches into an emptied index: store write, writer lock, bucket write."""
    lsh.clear()
    lsh.store = MemoryStore()
    t0 = time.perf_counter()
    for lo in range(0, len(vectors), batch):
        lsh.ingest(vectors=vectors[lo : lo + batch], ids=np.arange(lo, min(lo + batch, len(vectors))))
    return len(vectors) / (time.perf_counter() - t0)


def measure(clients: dict[str, Any], vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray) -> list[dict]:
    built = {label: build(client, vectors) for label, client in clients.items()}
    timings = queries_timed({label: lsh for label, (lsh, _) in built.items()}, queries, truth)
    rows = []
    for label, (lsh, memory) in built.items():
        rows.append({"target": label, **memory, **timings[label], "ingest_vectors_per_s": ingest_rate(lsh, vectors)})
        lsh.clear()
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "found"}), flush=True)
    return rows


def server_version() -> str:
    return subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()

    vectors, queries, truth = workload(args.n, args.dim, args.queries)

    load_before = os.getloadavg()[0]
    standalone, cluster = RedisServer(), RedisClusterServer(masters=3)
    try:
        single, sharded_client = redis.Redis.from_url(standalone.url), redis.RedisCluster.from_url(cluster.url)
        clients = {"standalone": single, "cluster": sharded_client}
        alone, sharded = measure(clients, vectors, queries, truth)
    finally:
        standalone.stop()
        cluster.stop()
    report = {
        "lshrs": __version__,
        "redis_server": server_version(),
        "redis_py": redis.__version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, 2 cores (shared); all servers and the client on one host",
        "n": args.n,
        "dim": args.dim,
        "queries": args.queries,
        "load_average_1min": [load_before, os.getloadavg()[0]],
        "identical_results": alone.pop("found") == sharded.pop("found"),
        "targets": [alone, sharded],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cluster.json").write_text(json.dumps(report, indent=2))
    (RESULTS / "cluster.md").write_text(markdown(report))
    print((RESULTS / "cluster.md").read_text())


def markdown(r: dict) -> str:
    alone, sharded = r["targets"]
    lines = [
        f"# Redis Cluster (3 masters) vs standalone Redis ({r['n']:,} clustered synthetic {r['dim']}-d vectors)",
        "",
        f"lshrs {r['lshrs']}, redis-server {r['redis_server']} (Debian), redis-py {r['redis_py']}, "
        f"Python {r['python']}, {r['machine']}. Default parameters; MemoryStore (the figures are the Redis side).",
        "Reproduce: `.venv/bin/python benchmarks/cluster.py`. Queries run interleaved (one on each target in turn);",
        f"1-minute load average {r['load_average_1min'][0]:.1f} at the start, "
        f"{r['load_average_1min'][1]:.1f} at the end "
        "(other work shared the machine): compare the rows with each other, not with other result files.",
        "",
        f"Same top-10 for all {r['queries']} queries on both: {r['identical_results']}.",
        "",
        "| target | keys | used_memory delta | bytes/vector | build vec/s | ingest vec/s "
        "| query p50 ms | query p95 ms | query_many q/s | recall@10 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for t in (alone, sharded):
        lines.append(
            f"| {t['target']} | {t['keys']:,} | {t['used_memory_delta'] / 2**20:.1f} MiB | {t['bytes_per_vector']:.0f} "
            f"| {t['build_vectors_per_s']:,.0f} | {t['ingest_vectors_per_s']:,.0f} | {t['query_p50_ms']:.2f} "
            f"| {t['query_p95_ms']:.2f} | {t['query_many_qps']:,.0f} | {t['recall_at_10']:.3f} |"
        )
    lines += ["", "## Per shard (cluster)", "", "| node | keys | used_memory delta | share |"]
    lines.append("| --- | ---: | ---: | ---: |")
    for s in sharded["shards"]:
        mib = s["used_memory_delta"] / 2**20
        lines.append(f"| {s['node']} | {s['keys']:,} | {mib:.2f} MiB | {100 * s['memory_share']:.1f} % |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
