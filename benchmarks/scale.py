"""Scale: a bulk build of up to --max vectors through Postgres, measured at growing sizes.

Run:  .venv/bin/python benchmarks/scale.py [--max 1000000] [--steps 4]

The documented bulk path, in two timed phases per size: rows written to
Postgres with PostgresStore.put (binary COPY, batches of --batch), then
`LSHRS.index()` over the table, which is incremental, so each size grows the
same table and index. At every size: wall time and rows/s of each phase, Redis
INFO memory, Postgres relation sizes, query latency (single and query_many),
candidates per query and recall@10 against exact numpy ground truth
(accumulated chunk by chunk while the rows are generated). Vectors are
clustered synthetic, generated in chunks so memory stays bounded. At the
final size it also builds indexes with more bits (--alt-bits) on the same
table, measures a 768-d table's bytes per row, and writes a stated model
extrapolating to --target vectors on one Redis and on --shards shards.
Writes benchmarks/results/scale.json and scale.md. Starts its own Redis and
Postgres (fsync=off) on free loopback ports and stops them.
"""

from __future__ import annotations

import argparse
import json
import math
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
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from servers import Postgres, RedisServer, debian_pg_bindir  # noqa: E402

from lshrs import LSHRS, PostgresStore, __version__, search  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
TABLE = "scale_docs"
CLUSTERS = 1000


class Corpus:
    """Clustered synthetic vectors (as benchmarks/core.py), drawn chunk by chunk from (seed, chunk) streams."""

    def __init__(self, dim: int, chunk: int, seed: int = 0) -> None:
        self.dim, self.chunk, self.seed = dim, chunk, seed
        self.centres = np.random.default_rng(seed).standard_normal((CLUSTERS, dim)).astype(np.float32)

    def rows(self, index: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, index])
        labels = rng.integers(0, CLUSTERS, self.chunk)
        return self.centres[labels] + 0.6 * rng.standard_normal((self.chunk, self.dim)).astype(np.float32)

    def queries(self, n: int) -> np.ndarray:
        """Fresh draws from the same distribution (not corpus rows), as in core.py."""
        rng = np.random.default_rng([self.seed, 2**31])
        labels = rng.integers(0, CLUSTERS, n)
        return self.centres[labels] + 0.6 * rng.standard_normal((n, self.dim)).astype(np.float32)


class Truth:
    """Exact cosine top-k of a few queries over every row seen so far, merged chunk by chunk."""

    def __init__(self, queries: np.ndarray, k: int = 10) -> None:
        self.q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
        self.k = k
        self.ids = np.empty((len(queries), 0), np.int64)
        self.scores = np.empty((len(queries), 0), np.float32)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        scores = self.q @ (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).T
        all_scores = np.hstack([self.scores, scores])
        all_ids = np.hstack([self.ids, np.broadcast_to(ids, scores.shape)])
        best = np.argsort(-all_scores, axis=1)[:, : self.k]
        self.scores = np.take_along_axis(all_scores, best, 1)
        self.ids = np.take_along_axis(all_ids, best, 1)


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def redis_memory(client: redis.Redis) -> dict:
    info = client.info("memory")
    return {k: int(info[k]) for k in ("used_memory", "used_memory_rss")} | {"keys": int(client.dbsize())}


def pg_sizes(store: PostgresStore, table: str = TABLE) -> dict:
    row = store._conn.execute(
        "SELECT pg_total_relation_size(%s), pg_relation_size(%s), pg_indexes_size(%s)", (table, table, table)
    ).fetchone()
    assert row is not None
    total, heap, indexes = (int(x) for x in row)
    return {"total": total, "heap": heap, "indexes": indexes, "toast": total - heap - indexes}


def put_rows(store: PostgresStore, corpus: Corpus, first: int, last: int, batch: int, truth: Truth) -> float:
    """Generate chunks [first, last) and write them with PostgresStore.put; returns seconds spent in put."""
    spent = 0.0
    for c in range(first, last):
        vectors = corpus.rows(c)
        ids = np.arange(c * corpus.chunk, (c + 1) * corpus.chunk, dtype=np.int64)
        truth.add(ids, vectors)
        t0 = time.perf_counter()
        for lo in range(0, len(ids), batch):
            store.put(ids[lo : lo + batch], vectors[lo : lo + batch])
        spent += time.perf_counter() - t0
    return spent


def candidates(lsh: LSHRS, queries: np.ndarray, probes: int) -> np.ndarray:
    """LSH candidates per query: the ids a reranked query fetches from the store."""
    return lsh.candidate_counts(queries, num_probes=probes)


def recall(found: list[list[int]], truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t.tolist())) / truth.shape[1] for f, t in zip(found, truth)]))


def latencies(lsh: LSHRS, queries: np.ndarray, **options: Any) -> tuple[np.ndarray, list[list[int]]]:
    lsh.query(queries[0], top_k=10, **options)  # warm up: prepared statements, caches
    times, found = [], []
    for q in queries:
        t0 = time.perf_counter()
        hits = lsh.query(q, top_k=10, **options)
        times.append(time.perf_counter() - t0)
        found.append([h.id for h in hits])
    return np.array(times) * 1e3, found


def measure_queries(lsh: LSHRS, queries: np.ndarray, truth: np.ndarray, many_batch: int, probes: int) -> dict:
    """Single-query latency, recall@10, candidates, the fast paths, and query_many throughput."""
    n_truth = len(truth)
    lsh.num_probes = probes
    ms, found = latencies(lsh, queries)
    ms_p, found_p = latencies(lsh, queries, top_p=0.1)
    ms_ids, _ = latencies(lsh, queries, rerank=False)
    t0 = time.perf_counter()
    for lo in range(0, len(queries), many_batch):
        lsh.query_many(queries[lo : lo + many_batch], top_k=10)
    many_qps = len(queries) / (time.perf_counter() - t0)
    cands = candidates(lsh, queries, probes)
    return {
        "num_probes": probes,
        "queries": len(queries),
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "p99_ms": float(np.percentile(ms, 99)),
        "recall_at_10": recall(found[:n_truth], truth),
        "candidates_mean": float(cands.mean()),
        "candidates_p95": float(np.percentile(cands, 95)),
        "top_p_0.1_p50_ms": float(np.percentile(ms_p, 50)),
        "top_p_0.1_recall_at_10": recall(found_p[:n_truth], truth),
        "rerank_false_p50_ms": float(np.percentile(ms_ids, 50)),
        "query_many_batch": many_batch,
        "query_many_qps": many_qps,
    }


def build_step(ctx: dict, n: int, done_chunks: int, args: argparse.Namespace) -> tuple[dict, int]:
    """Grow the table to n rows, index() the new ones, and measure everything at this size."""
    corpus, store, client = ctx["corpus"], ctx["store"], ctx["client"]
    chunks = n // corpus.chunk
    load_start = load_average()
    put_s = put_rows(store, corpus, done_chunks, chunks, args.batch, ctx["truth"])
    # Attach once rows exist, as a bulk load does: an LSHRS made over the empty table and
    # index()ed later fails in this version ("format version 0"; see the report of issue 5).
    lsh = ctx["lsh"] = ctx["lsh"] or LSHRS(name="scale", redis=client, store=store)
    new = (chunks - done_chunks) * corpus.chunk
    print(f"n={n:,}: put {new:,} rows in {put_s:.1f} s", flush=True)
    t0 = time.perf_counter()
    indexed = lsh.index()
    index_s = time.perf_counter() - t0
    print(f"n={n:,}: index() {indexed:,} rows in {index_s:.1f} s", flush=True)
    memory = redis_memory(client)
    stats = lsh.stats()
    row = {
        "n": n,
        "new_rows": new,
        "store_put_s": put_s,
        "store_rows_per_s": new / put_s,
        "index_s": index_s,
        "index_rows": indexed,
        "index_rows_per_s": indexed / index_s,
        "incremental": done_chunks > 0,
        "redis": memory,
        "redis_bytes_per_vector": (memory["used_memory"] - ctx["redis_base"]) / n,
        "redis_bytes_per_entry": (memory["used_memory"] - ctx["redis_base"]) / (n * stats["num_tables"]),
        "buckets": stats["buckets"],
        "bucket_size": stats["bucket_size"],
        "postgres": pg_sizes(store),
        "loadavg_start": load_start,
    }
    row["postgres_bytes_per_row"] = row["postgres"]["total"] / n
    truth = ctx["truth"].ids[: args.recall_queries]
    row["query"] = measure_queries(lsh, ctx["queries"], truth, args.many_batch, lsh.num_probes)
    row["loadavg_end"] = load_average()
    print(json.dumps(row), flush=True)
    return row, chunks


def index_breakdown(store: PostgresStore, lsh: LSHRS, batch: int) -> dict:
    """Where index() time goes: a full scan of the table alone, and hashing alone (per row)."""
    t0 = time.perf_counter()
    rows = 0
    sample = None
    for part in store.scan(batch_size=batch, payload=False):
        rows += len(part)
        sample = part.vectors if sample is None else sample
    scan_s = time.perf_counter() - t0
    assert lsh.hasher is not None and sample is not None
    t0 = time.perf_counter()
    for _ in range(5):
        lsh.hasher.codes(sample)
    hash_s = (time.perf_counter() - t0) / (5 * len(sample))
    return {"scan_rows_per_s": rows / scan_s, "hash_rows_per_s": 1 / hash_s, "rows": rows}


def alt_bits(ctx: dict, bits: int, probes: list[int], args: argparse.Namespace) -> dict:
    """A fresh index over the same table with `bits` bits per table: build, memory, queries; then cleared.

    With the main index's bits this is the one-call bulk build (all rows in the store, then one
    index()); probe counts already measured on the main index are not repeated.
    """
    client, main = ctx["client"], ctx["lsh"]
    base = redis_memory(client)["used_memory"]
    lsh = LSHRS(name=f"scale-k{bits}", redis=client, store=ctx["store"], num_bits=bits)
    t0 = time.perf_counter()
    n = lsh.index()
    index_s = time.perf_counter() - t0
    used = redis_memory(client)["used_memory"] - base
    print(f"fresh index() K={bits}: {n:,} rows in {index_s:.1f} s", flush=True)
    truth = ctx["truth"].ids[: args.recall_queries]
    same = bits == main.params["num_bits"]
    row = {
        "num_bits": bits,
        "n": n,
        "index_s": index_s,
        "index_rows_per_s": n / index_s,
        "redis_bytes_per_vector": used / n,
        "bucket_size": lsh.stats()["bucket_size"],
        "query": [
            measure_queries(lsh, ctx["queries"], truth, args.many_batch, p)
            for p in probes
            if not (same and p == main.num_probes)
        ],
    }
    lsh.clear()
    print(json.dumps(row), flush=True)
    return row


def get_plan(store: PostgresStore, lsh: LSHRS, query: np.ndarray) -> list[str]:
    """EXPLAIN ANALYZE of the rerank read (vectors of one query's candidates) at the final size."""
    ids = candidates_ids(lsh, query[None])
    stmt = store._get_statement(False).as_string(store._conn)
    rows = store._conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + stmt, (ids.tolist(),)).fetchall()
    return [r[0][:160] for r in rows]  # the Index Cond line lists every id


def candidates_ids(lsh: LSHRS, queries: np.ndarray) -> np.ndarray:
    pairs = search.probe(lsh.attachment, queries, lsh.num_probes)
    return np.asarray(pairs.ids, np.int64)


def disk_probe(dsn: str, dim: int, rows: int) -> dict:
    """Postgres bytes per row of a bytea table of `dim`-d vectors (TOAST starts near 2 kB a row)."""
    table = f"disk_probe_{dim}"
    store = PostgresStore(dsn, table=table)
    rng = np.random.default_rng(7)
    for lo in range(0, rows, 10_000):
        store.put(np.arange(lo, lo + 10_000), rng.standard_normal((10_000, dim)).astype(np.float32))
    store._conn.execute(f"VACUUM ANALYZE {table}")
    sizes = pg_sizes(store, table)
    store._conn.execute(f"DROP TABLE {table}")
    store.close()
    return {"dim": dim, "rows": rows, **sizes, "bytes_per_row": sizes["total"] / rows}


def code_state() -> dict:
    """The commit measured, and core files with uncommitted edits at the time (other work in progress)."""

    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    return {
        "commit": git("rev-parse", "HEAD"),
        "uncommitted_core_files": git("status", "--porcelain", "lshrs").split("\n"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max", type=int, default=1_000_000, help="final table size")
    parser.add_argument("--steps", type=int, default=4, help="measure at max/steps, 2*max/steps, ..., max")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--chunk", type=int, default=50_000, help="rows generated at a time")
    parser.add_argument("--batch", type=int, default=10_000, help="rows per PostgresStore.put")
    parser.add_argument("--queries", type=int, default=200, help="latency queries per size")
    parser.add_argument("--recall-queries", type=int, default=100)
    parser.add_argument("--many-batch", type=int, default=20, help="queries per query_many call")
    parser.add_argument(
        "--alt-bits", default="14,16,17", help="num_bits of fresh indexes built over the table at --max"
    )
    parser.add_argument("--alt-probes", default="12,48", help="num_probes measured on the extra indexes")
    parser.add_argument("--probe-768", type=int, default=20_000, help="rows of the 768-d disk probe (0: skip)")
    parser.add_argument("--target", type=int, default=6_400_000, help="extrapolate to this many vectors")
    parser.add_argument("--shards", type=int, default=3)
    args = parser.parse_args()
    sizes = sorted({(args.max * (i + 1) // args.steps) // args.chunk * args.chunk for i in range(args.steps)} - {0})

    report: dict[str, Any] = {
        "lshrs": __version__,
        "code": code_state(),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, shared with other jobs",
        "dim": args.dim,
        "sizes": sizes,
        "recall_queries": args.recall_queries,
        "loadavg_before": load_average(),
    }
    rs = RedisServer()
    pg = Postgres(debian_pg_bindir())
    pg.start()
    t_start = time.perf_counter()
    try:
        report.update(run(rs, pg, sizes, args))
    finally:
        rs.stop()
        pg.stop()
    report["total_wall_s"] = time.perf_counter() - t_start
    report["loadavg_after"] = load_average()
    report["model"] = model(report, args.target, args.shards)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scale.json").write_text(json.dumps(report, indent=2))
    (RESULTS / "scale.md").write_text(markdown(report))
    print((RESULTS / "scale.md").read_text())


def run(rs: RedisServer, pg: Postgres, sizes: list[int], args: argparse.Namespace) -> dict:
    client = redis.Redis.from_url(rs.url)
    corpus = Corpus(args.dim, args.chunk)
    queries = corpus.queries(args.queries)
    store = PostgresStore(pg.dsn, table=TABLE)
    ctx = {
        "corpus": corpus,
        "store": store,
        "client": client,
        "queries": queries,
        "truth": Truth(queries[: args.recall_queries]),
        "redis_base": redis_memory(client)["used_memory"],
        "lsh": None,
    }
    out: dict[str, Any] = {"redis_base": redis_memory(client), "params": None, "steps": []}
    done = 0
    for n in sizes:
        row, done = build_step(ctx, n, done, args)
        out["steps"].append(row)
    lsh = ctx["lsh"]
    out["params"] = {k: lsh.params[k] for k in ("num_tables", "num_bits", "id_bytes")} | {"num_probes": lsh.num_probes}
    out["index_breakdown"] = index_breakdown(store, lsh, lsh.batch_size)
    print(json.dumps(out["index_breakdown"]), flush=True)
    out["get_plan"] = get_plan(store, lsh, ctx["queries"][0])
    print("\n".join(out["get_plan"]), flush=True)
    probes = [int(p) for p in args.alt_probes.split(",")]
    out["alt_bits"] = [alt_bits(ctx, int(b), probes, args) for b in args.alt_bits.split(",") if b]
    out["disk_768"] = disk_probe(pg.dsn, 768, args.probe_768) if args.probe_768 else None
    store.close()
    return out


def fit_line(x: list[float], y: list[float]) -> tuple[float, float]:
    """Least-squares y = a + b x (a constant when there is one point)."""
    if len(x) < 2:
        return float(np.mean(y)), 0.0
    b, a = np.polyfit(np.asarray(x, float), np.asarray(y, float), 1)
    return float(a), float(b)


def per_row_cost(points: list[tuple[float, float]], target: int) -> dict:
    """Seconds per row as a line in the table size; the total to `target` rows is its integral.

    `points` are (table size at the middle of a phase, seconds per row in it). A falling line
    (noise between a few points) is replaced by the mean: costs are not assumed to shrink.
    """
    a, b = fit_line([m for m, _ in points], [t for _, t in points])
    if b < 0:
        a, b = float(np.mean([t for _, t in points])), 0.0
    return {"s_per_row_at_0": a, "s_per_row_per_row": b, "hours": (a * target + b * target**2 / 2) / 3600}


def model(r: dict, target: int, shards: int) -> dict:
    """Extrapolation to `target` vectors from the measured steps; every figure states its inputs."""
    steps_, p = r["steps"], r["params"]
    last = steps_[-1]
    ns = [s["n"] for s in steps_]
    mem_a, mem_b = fit_line(ns, [s["redis"]["used_memory"] - r["redis_base"]["used_memory"] for s in steps_])
    mids = [s["n"] - s["new_rows"] / 2 for s in steps_]
    put = per_row_cost([(m, s["store_put_s"] / s["new_rows"]) for m, s in zip(mids, steps_)], target)
    incr = per_row_cost([(m, s["index_s"] / s["index_rows"]) for m, s in zip(mids, steps_) if s["incremental"]], target)
    same = [a for a in r["alt_bits"] if a["num_bits"] == p["num_bits"]]
    # one fresh index() over the whole table: at the per-row cost of the largest fresh build measured
    biggest = same[0] if same else {"n": steps_[0]["n"], "index_s": steps_[0]["index_s"]}
    fresh = per_row_cost([(0.0, biggest["index_s"] / biggest["n"])], target) | {"measured_at": biggest["n"]}
    lat_a, lat_b = fit_line([s["query"]["candidates_mean"] for s in steps_], [s["query"]["p50_ms"] for s in steps_])
    cand_frac = last["query"]["candidates_mean"] / last["n"]
    options = [(a["num_bits"], q) for a in r["alt_bits"] if a["num_bits"] != p["num_bits"] for q in a["query"]]
    top = max(options, key=lambda o: o[0]) if options else None
    per_bit = None
    if top is not None:
        narrow = [q for b, q in options if b == top[0] and q["num_probes"] == p["num_probes"]]
        if narrow:
            ratio = last["query"]["candidates_mean"] / narrow[0]["candidates_mean"]
            per_bit = ratio ** (1 / (top[0] - p["num_bits"]))
    extra = math.log(target / last["n"]) / math.log(per_bit or 2.0)
    at_target = [
        {
            "num_bits": b,
            "num_probes": q["num_probes"],
            "recall_at_10_measured": q["recall_at_10"],
            "candidates_target": q["candidates_mean"] * target / last["n"],
            "p50_ms_target": lat_a + lat_b * q["candidates_mean"] * target / last["n"],
        }
        for b, q in [(p["num_bits"], last["query"]), *options]
    ]
    redis_target = mem_a + mem_b * target
    disk = r.get("disk_768")
    return {
        "target": target,
        "shards": shards,
        "redis_fit_bytes": {"intercept": mem_a, "per_vector": mem_b},
        "redis_bytes_target": redis_target,
        "redis_bytes_per_shard": redis_target / shards,
        "mean_bucket_target": target / 2 ** p["num_bits"],
        "mean_bucket_measured": last["n"] / 2 ** p["num_bits"],
        "postgres_bytes_per_row": last["postgres_bytes_per_row"],
        "postgres_bytes_target": last["postgres_bytes_per_row"] * target,
        "postgres_bytes_target_768": disk["bytes_per_row"] * target if disk else None,
        "store_put": put,
        "index_fresh": fresh,
        "index_incremental": incr,
        "candidates_fraction": cand_frac,
        "latency_fit_ms": {"intercept": lat_a, "per_candidate": lat_b},
        "at_target": at_target,
        "candidates_per_extra_bit": per_bit,
        "extra_bits_for_constant_candidates": extra,
        "bits_for_constant_candidates": p["num_bits"] + extra,
    }


def markdown(r: dict) -> str:
    return "\n".join(_intro(r) + _steps_table(r) + _alt_table(r) + _model_text(r)) + "\n"


def _intro(r: dict) -> list[str]:
    last = r["steps"][-1]
    b = r["index_breakdown"]
    plan = ", ".join(line.strip() for line in r["get_plan"] if "Scan" in line or "Execution" in line)
    return [
        f"# Scale: bulk build to {last['n']:,} clustered synthetic {r['dim']}-d vectors through Postgres",
        "",
        f"lshrs {r['lshrs']}, Python {r['python']}, {r['machine']}. Parameters {r['params']} (the defaults).",
        f"Reproduce: `.venv/bin/python benchmarks/scale.py --max {last['n']}`; total wall time "
        f"{r['total_wall_s'] / 60:.0f} min. Load average before {r['loadavg_before']}, after {r['loadavg_after']}.",
        f"Commit {r['code']['commit'][:10]}; core files with uncommitted edits by other work during the run: "
        f"{', '.join(x.split()[-1] for x in r['code']['uncommitted_core_files'] if x) or 'none'}.",
        "",
        "One Redis 7 (no persistence) and one Postgres (`fsync=off`, a test setting: durable writes are",
        "slower) on this machine, shared with the client and with other jobs. Postgres keeps its default",
        "128 MB shared_buffers; the table fits in the OS page cache (24 GiB RAM), so reads never wait on disk.",
        "Phases per size: `PostgresStore.put` of the new rows (batches of 10,000, binary COPY), then",
        "`LSHRS.index()` over the table. index() is incremental: it indexes the rows past its checkpoint, and",
        "from the second size on it also removes each chunk's ids from their buckets before appending them",
        "(in case a crash or ingest() placed them already). Queries: fresh draws from the corpus distribution,",
        f"top_k=10: latency over {r['steps'][0]['query']['queries']} of them, recall@10 over the first "
        f"{r['recall_queries']} against exact numpy cosine over the whole table at that size.",
        "",
        f"`index()` parts at {b['rows']:,} rows: the Postgres scan alone reads {b['scan_rows_per_s']:,.0f} rows/s "
        f"and hashing alone takes {b['hash_rows_per_s']:,.0f} rows/s; the rest of index() is bucket writes.",
        f"Postgres plan of one query's rerank read at {last['n']:,} rows: {plan}.",
        "",
    ]


def _steps_table(r: dict) -> list[str]:
    lines = [
        "## Growth, measured (L=12, K=14, 12 probes)",
        "",
        "| vectors | put rows/s | index() rows/s | Redis MB | Redis B/vector | mean bucket | Postgres MB "
        "| PG B/row | candidates/query | p50 ms | p95 ms | p99 ms | recall@10 | top_p=0.1 p50 ms / recall "
        "| rerank=False p50 ms | query_many q/s |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | ---: |",
    ]
    for s in r["steps"]:
        q = s["query"]
        used = s["redis"]["used_memory"] - r["redis_base"]["used_memory"]
        lines.append(
            f"| {s['n']:,} | {s['store_rows_per_s']:,.0f} | {s['index_rows_per_s']:,.0f} | {used / 1e6:.1f} "
            f"| {s['redis_bytes_per_vector']:.1f} | {s['bucket_size']['mean']:.1f} "
            f"| {s['postgres']['total'] / 1e6:,.0f} "
            f"| {s['postgres_bytes_per_row']:,.0f} | {q['candidates_mean']:,.0f} | {q['p50_ms']:.1f} "
            f"| {q['p95_ms']:.1f} | {q['p99_ms']:.1f} | {q['recall_at_10']:.3f} "
            f"| {q['top_p_0.1_p50_ms']:.1f} / {q['top_p_0.1_recall_at_10']:.3f} | {q['rerank_false_p50_ms']:.1f} "
            f"| {q['query_many_qps']:.1f} |"
        )
    lines += ["", "Rates are over the rows added since the previous size. Wall time per size:", ""]
    for s in r["steps"]:
        lines.append(
            f"- {s['n']:,}: put {s['new_rows']:,} rows {s['store_put_s']:.0f} s, index() {s['index_rows']:,} rows "
            f"{s['index_s']:.0f} s{' (incremental)' if s['incremental'] else ' (fresh)'}; "
            f"load average {s['loadavg_start'][0]} -> {s['loadavg_end'][0]}"
        )
    put_s = sum(s["store_put_s"] for s in r["steps"])
    last = r["steps"][-1]
    fresh = [a for a in r["alt_bits"] if a["num_bits"] == r["params"]["num_bits"]]
    if fresh:
        f = fresh[0]
        lines += [
            "",
            f"**One-shot bulk build of {last['n']:,} rows** (the documented path): put {put_s:.0f} s "
            f"({last['n'] / put_s:,.0f} rows/s; the sum of the puts above, which depend only on the table size), "
            f"then one fresh `index()` over the full table {f['index_s']:.0f} s ({f['index_rows_per_s']:,.0f} rows/s),"
            f" **{(put_s + f['index_s']) / 60:.1f} min** in all; Redis {f['redis_bytes_per_vector']:.1f} B/vector "
            f"after a fresh build, {last['redis_bytes_per_vector']:.1f} after the incremental ones.",
        ]
    return [*lines, ""]


def _alt_table(r: dict) -> list[str]:
    if not r.get("alt_bits"):
        return []
    last = r["steps"][-1]
    lines = [
        f"## Fresh indexes at {last['n']:,} vectors (each a second index over the same table, then cleared)",
        "",
        "| bits | probes | index() rows/s | Redis B/vector | mean bucket | candidates/query | p50 ms | p95 ms "
        "| recall@10 | top_p=0.1 p50 ms / recall | rerank=False p50 ms | query_many q/s |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    rows = [(last["index_rows_per_s"], last["redis_bytes_per_vector"], last["bucket_size"], r["params"]["num_bits"],
             last["query"], " (grown)")]  # fmt: skip
    for a in r["alt_bits"]:
        rows += [(a["index_rows_per_s"], a["redis_bytes_per_vector"], a["bucket_size"], a["num_bits"], q, "")
                 for q in a["query"]]  # fmt: skip
    for rate, mem, size, bits, q, note in rows:
        lines.append(
            f"| {bits}{note} | {q['num_probes']} | {rate:,.0f} | {mem:.1f} | {size['mean']:.1f} "
            f"| {q['candidates_mean']:,.0f} | {q['p50_ms']:.1f} | {q['p95_ms']:.1f} | {q['recall_at_10']:.3f} "
            f"| {q['top_p_0.1_p50_ms']:.1f} / {q['top_p_0.1_recall_at_10']:.3f} | {q['rerank_false_p50_ms']:.1f} "
            f"| {q['query_many_qps']:.1f} |"
        )
    return [*lines, ""]


def _model_text(r: dict) -> list[str]:
    m, p, last = r["model"], r["params"], r["steps"][-1]
    t, fit, lat = m["target"], m["redis_fit_bytes"], m["latency_fit_ms"]
    lines = [
        f"## Model: {t / 1e6:g} million vectors (extrapolated from the rows above, not measured)",
        "",
        f"- **Redis RAM.** Least-squares line through the measured sizes: used_memory = "
        f"{fit['intercept'] / 1e6:.1f} MB + {fit['per_vector']:.1f} B x n. At {t:,}: "
        f"**{m['redis_bytes_target'] / 1e6:,.0f} MB** on one Redis; "
        f"**{m['redis_bytes_per_shard'] / 1e6:,.0f} MB per shard** on {m['shards']} shards (the "
        f"{p['num_tables']} x 2^{p['num_bits'] - 6} bucket groups are hash tags spread over the slots). The slope "
        f"is the ids ({p['num_tables']} tables x {p['id_bytes']} B = {p['num_tables'] * p['id_bytes']} B a vector) "
        f"plus allocator rounding of the bucket strings; the bucket count stops growing at {p['num_tables']} x "
        f"2^{p['num_bits']} = {p['num_tables'] * 2 ** p['num_bits']:,}, so key overhead per vector keeps "
        f"falling. Buckets grow instead: mean bucket = n / 2^K = {m['mean_bucket_measured']:.0f} ids at "
        f"{last['n']:,}, {m['mean_bucket_target']:.0f} ids ({m['mean_bucket_target'] * p['id_bytes'] / 1e3:.1f} kB) "
        f"at {t:,}; every append rewrites its bucket whole, so an ingest of one row costs more there.",
        f"- **Postgres disk.** {m['postgres_bytes_per_row']:,.0f} B a row measured (bytea {r['dim']}-d, heap + "
        f"primary key) x {t:,} = **{m['postgres_bytes_target'] / 1e9:.1f} GB**"
        + (
            f"; 768-d: {r['disk_768']['bytes_per_row']:,.0f} B a row (measured on {r['disk_768']['rows']:,} rows: "
            f"a 3 kB vector goes to TOAST in two chunks) = **{m['postgres_bytes_target_768'] / 1e9:.1f} GB**."
            if m["postgres_bytes_target_768"]
            else "."
        ),
        _build_text(m, t),
        f"- **Query latency, K={p['num_bits']}.** Candidates per query grow linearly with n at fixed K: "
        f"{100 * m['candidates_fraction']:.2f} % of n here. Line through the measured sizes: p50 = "
        f"{lat['intercept']:.1f} ms + {1e3 * lat['per_candidate']:.2f} ms per 1,000 candidates (each candidate's "
        "vector is read from Postgres and reranked). Recall at fixed (K, probes) does not fall with n (table). "
        "At the target, assuming both hold:",
        "",
        "| bits | probes | recall@10 (measured at " + f"{last['n']:,}) | candidates/query at {t:,} | p50 ms at {t:,} |",
        "| ---: | ---: | ---: | ---: | ---: |",
        *[
            f"| {a['num_bits']} | {a['num_probes']} | {a['recall_at_10_measured']:.3f} | {a['candidates_target']:,.0f} "
            f"| {a['p50_ms_target']:,.0f} |"
            for a in m["at_target"]
        ],
        "",
        _bits_text(r),
        f"- **{m['shards']} shards.** RAM per shard is the total / {m['shards']} above. A query reads its buckets "
        "with one pipelined script per bucket group (one round trip per shard); candidates, store reads and "
        "rerank are unchanged, so the latency line above still applies (no cluster in this run; "
        "[cluster.md](cluster.md) compares one with standalone Redis at 100,000 vectors).",
    ]
    return lines


def _build_text(m: dict, t: int) -> str:
    put, fresh, incr = m["store_put"], m["index_fresh"], m["index_incremental"]
    return (
        f"- **Build time** (one client process, this machine). Seconds per row is fitted as a line in the table "
        f"size over the measured phases, and integrated to {t:,}: store put {1e6 * put['s_per_row_at_0']:.1f} us "
        f"a row, plus {1e12 * put['s_per_row_per_row']:.1f} us a row per million rows already in the table "
        f"-> **{put['hours']:.1f} h**"
        f"; one fresh index() **{fresh['hours']:.1f} h** (at its per-row cost measured on {fresh['measured_at']:,} "
        f"rows); index() run incrementally as the table grows "
        f"{incr['hours']:.1f} h. The put line rising with the table is the planner issue in the report of issue 5 "
        "(the UPDATE/INSERT from the temporary table hash-join the whole table each batch)."
    )


def _bits_text(r: dict) -> str:
    m, p, last = r["model"], r["params"], r["steps"][-1]
    t = m["target"]
    factor = m["candidates_per_extra_bit"] or 2.0
    top = max(a["num_bits"] for a in r["alt_bits"]) if r["alt_bits"] else None
    source = f"measured, K={p['num_bits']} -> K={top} at {last['n']:,}" if m["candidates_per_extra_bit"] else "assumed"
    return (
        f"- **Bits for constant candidates.** Mean bucket = n / 2^K, so doubling n at fixed K doubles candidates "
        f"and one more bit halves them again in the ideal: K=17 at {t / 1e6:g}M has the bucket size of K=14 at "
        f"{t / 8 / 1e3:,.0f}k ({t:,} / 2^17 = {t / 2**17:.0f} = {t // 8:,} / 2^14). Measured, one extra bit divides "
        f"candidates by {factor:.2f} ({source}; multi-probe visits neighbouring buckets, so less than 2). "
        f"Holding candidates at the {last['n']:,}-vector level: {p['num_bits']} + log({t:,} / {last['n']:,}) / "
        f"log({factor:.2f}) = **K = {m['bits_for_constant_candidates']:.1f}**. More bits cut recall at the same "
        "probes; the fresh-index table shows how many probes buy it back."
    )


if __name__ == "__main__":
    main()
