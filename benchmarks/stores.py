"""Where should the vectors live? MemoryStore, SQLite, Postgres and Redis hashes, same data, same queries.

Run:  .venv/bin/python benchmarks/stores.py [--sizes 100000 1000000] [--queries 300]
Quick: .venv/bin/python benchmarks/stores.py --sizes 20000

For each size and store, one after the other (each store's servers are
started before and stopped after it, so the 1M runs never share memory):
the store load (`store.put` in batches), the bucket build (`LSHRS.index()`,
which scans the store), Redis bucket bytes and the store's own bytes, and
single queries (top_k=10, default parameters) timed phase by phase.

The phase split comes from `timed_run`, a copy of the loop in
`lshrs.steps.run` with a stopwatch: wall time inside each step call (the
bucket read, the store reads) and the generator's own CPU time between the
steps (hashing before the bucket read, candidate ranking after it, the
exact rerank after the vector read). The library itself is not changed.

Vectors: clustered synthetic 384-d float32, drawn by the chunked generator
of benchmarks/scale.py (the distribution of benchmarks/core.py); queries are
fresh draws from it, and recall@10 is against exact numpy cosine.
Writes benchmarks/results/stores.json, stores.md and stores.png. Servers come
from tests/servers.py on free loopback ports (Postgres with fsync=off).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks"), str(ROOT / "tests")]

from core import used_memory  # noqa: E402
from scale import Corpus, Truth, code_state, load_average, pg_sizes, recall  # noqa: E402
from servers import Postgres, RedisServer, debian_pg_bindir  # noqa: E402

from lshrs import (  # noqa: E402
    LSHRS,
    MemoryStore,
    SQLiteStore,
    __version__,
    search,  # noqa: E402
)
from lshrs.steps import Step, Steps  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
STORES = ("memory", "sqlite", "postgres", "redis hashes")
PHASES = ("hashing", "bucket read", "ranking", "candidate fetch", "rerank", "payload", "other")
# The generator's CPU time between two steps belongs to the phase after the previous step.
CPU_AFTER = {None: "hashing", "bucket read": "ranking", "candidate fetch": "rerank"}
TOP_K = 10


# -- the timing driver -------------------------------------------------------


@dataclass
class Stopwatch:
    """Seconds per phase of one query; `lap` charges the time since the last lap to a phase."""

    mark: float
    spent: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))
    candidates: int = 0
    bucket_reads: int = 0

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.spent[phase] += now - self.mark
        self.mark = now


def step_phase(step: Step) -> str:
    """The phase of a step call: the bucket read, the candidate vectors, the top_k payloads, or other I/O."""
    if step.target == "buckets" and step.method == "fetch":
        return "bucket read"
    if step.target == "store" and step.method == "get":
        return "payload" if step.kwargs.get("payload", True) else "candidate fetch"
    return "other"  # the exact-scan pages, an attach: not expected on these indexes


def timed_run(steps: Steps[Any], targets: dict[str, Any], watch: Stopwatch) -> Any:
    """`lshrs.steps.run`, with every step call and every stretch of generator work charged to a phase.

    A copy, not a wrapper: the loop is the same, so the time measured is the
    time `LSHRS.query` spends, plus two perf_counter calls per step.
    """
    last: str | None = None
    try:
        step = next(steps)
        while True:
            watch.lap(CPU_AFTER.get(last, "other"))
            try:
                value, ok = getattr(targets[step.target], step.method)(*step.args, **step.kwargs), True
            except Exception as exc:
                value, ok = exc, False
            last = step_phase(step)
            watch.lap(last)
            watch.candidates += len(step.args[0]) if last == "candidate fetch" else 0
            watch.bucket_reads += last == "bucket read"
            step = steps.send(value) if ok else steps.throw(value)
    except StopIteration as done:
        watch.lap(CPU_AFTER.get(last, "other"))
        return done.value


def timed_query(lsh: LSHRS, vector: np.ndarray, top_p: float | None = None) -> tuple[list[int], Stopwatch, float]:
    """One query built exactly as `LSHRS.query` builds it, driven by `timed_run`; ids, phases and wall time."""
    t0 = time.perf_counter()
    watch = Stopwatch(t0)
    request = search.request(
        search.one_query(vector, lsh.dim),
        dim=lsh.dim,
        top_k=TOP_K,
        top_p=top_p,
        rerank=True,
        probes=lsh.num_probes,
        filter=None,
        exact_below=lsh.exact_below,
        batch_size=lsh.batch_size,
        rerank_depth=lsh.rerank_depth,
    )
    targets = lsh.step_targets()
    watch.lap("other")  # validation, as in LSHRS.query
    hits = timed_run(search.query_steps(lsh.attachment, request), targets, watch)[0]
    total = time.perf_counter() - t0
    return [h.id for h in hits], watch, total


# -- data ----------------------------------------------------------------------


@dataclass
class Data:
    """Corpus rows, held-out queries and each query's exact top-10 ids."""

    ids: np.ndarray
    vectors: np.ndarray
    queries: np.ndarray
    truth: np.ndarray


def make_data(n: int, dim: int, n_queries: int, chunk: int) -> Data:
    """The first n rows of scale.py's chunked clustered stream (identical rows at 1M), truth merged chunk by chunk."""
    corpus = Corpus(dim, chunk)
    queries = corpus.queries(n_queries)
    truth = Truth(queries, TOP_K)
    vectors = np.empty((n, dim), np.float32)
    for c, lo in enumerate(range(0, n, chunk)):
        part = corpus.rows(c)[: n - lo]
        vectors[lo : lo + len(part)] = part
        truth.add(np.arange(lo, lo + len(part)), part)
    return Data(np.arange(n, dtype=np.int64), vectors, queries, truth.ids)


# -- stores and their servers ---------------------------------------------------


def rss_bytes() -> int:
    """This process's resident memory (Linux), for the in-process store."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@contextmanager
def open_store(kind: str) -> Iterator[tuple[Any, Callable[[], dict]]]:
    """The store and a function measuring its own bytes; its server or file lives only inside the block."""
    if kind == "memory":
        store = MemoryStore()
        yield store, lambda: {"bytes": memory_store_bytes(store)}
    elif kind == "sqlite":
        workdir = Path(tempfile.mkdtemp(prefix="lshrs-stores-"))
        store = SQLiteStore(workdir / "docs.sqlite3", table="docs")
        try:
            yield store, lambda: sqlite_bytes(store, workdir / "docs.sqlite3")
        finally:
            store.close()
            shutil.rmtree(workdir, ignore_errors=True)
    elif kind == "postgres":
        with postgres_store() as pair:
            yield pair
    elif kind == "redis hashes":
        with redis_store() as pair:
            yield pair
    else:
        raise ValueError(f"unknown store {kind!r}")


@contextmanager
def postgres_store() -> Iterator[tuple[Any, Callable[[], dict]]]:
    from lshrs import PostgresStore

    pg = Postgres(debian_pg_bindir())
    pg.start()  # fsync=off: a test setting, durable writes are slower
    try:
        store = PostgresStore(pg.dsn, table="docs")
        yield store, lambda: postgres_bytes(store)
        store.close()
    finally:
        pg.stop()


@contextmanager
def redis_store() -> Iterator[tuple[Any, Callable[[], dict]]]:
    """Documents on a Redis server of their own, so its used_memory delta is theirs alone."""
    from lshrs import RedisStore

    server = RedisServer()
    try:
        client = redis.Redis.from_url(server.url)
        base = used_memory(client)
        yield RedisStore(client, name="docs"), lambda: {"bytes": used_memory(client) - base}
        client.close()
    finally:
        server.stop()


def memory_store_bytes(store: MemoryStore) -> int:
    """The MemoryStore's arrays (ids, vectors, sorted index) and its two per-row lists."""
    arrays = sum(v.nbytes for v in vars(store).values() if isinstance(v, np.ndarray))
    lists = sum(sys.getsizeof(v) for v in vars(store).values() if isinstance(v, list))
    return int(arrays + lists)


def sqlite_bytes(store: SQLiteStore, path: Path) -> dict:
    """The database file; its write-ahead log is kept apart (bounded by checkpoints, not per row)."""
    wal = Path(f"{path}-wal")
    count, size = (int(store._conn.execute(f"PRAGMA {p}").fetchone()[0]) for p in ("page_count", "page_size"))
    return {
        "bytes": path.stat().st_size,
        "wal_bytes": wal.stat().st_size if wal.exists() else 0,
        "page_size": size,
        "page_bytes": count * size,
    }


def postgres_bytes(store: Any) -> dict:
    sizes = pg_sizes(store, "docs")
    return {"bytes": sizes["total"], **sizes}


# -- one store at one size ---------------------------------------------------------


def load(store: Any, data: Data, batch: int) -> float:
    """Seconds spent in store.put over batches of `batch` rows (the store's own load, no buckets)."""
    spent = 0.0
    for lo in range(0, len(data.ids), batch):
        ids, vectors = data.ids[lo : lo + batch], data.vectors[lo : lo + batch]
        t0 = time.perf_counter()
        store.put(ids, vectors)
        spent += time.perf_counter() - t0
    return spent


def settle(kind: str, store: Any) -> float:
    """What an operator does after a bulk load: VACUUM ANALYZE on Postgres (untimed in the load), else nothing."""
    if kind != "postgres":
        return 0.0
    t0 = time.perf_counter()
    store._conn.execute("VACUUM ANALYZE docs")
    return time.perf_counter() - t0


def measure_queries(lsh: LSHRS, data: Data, top_p: float | None = None) -> tuple[dict, list[list[int]]]:
    """Per-phase times over single queries, each next to the same query through plain `LSHRS.query` as a check.

    A first, untimed pass over every query warms what a running service has warm
    (prepared statements, connections, the database's page cache). Then each
    query runs twice, timed and plain, in alternating order, so that neither
    method gets the other's cache or the machine's quieter moments.
    """
    for q in data.queries:
        lsh.query(q, top_k=TOP_K, top_p=top_p)
    found, watches, totals, plain = [], [], [], []
    for i, q in enumerate(data.queries):
        for method in ("timed", "plain") if i % 2 == 0 else ("plain", "timed"):
            if method == "plain":
                t0 = time.perf_counter()
                lsh.query(q, top_k=TOP_K, top_p=top_p)
                plain.append(time.perf_counter() - t0)
                continue
            ids, watch, total = timed_query(lsh, q, top_p)
            found.append(ids)
            watches.append(watch)
            totals.append(total)
    return summarize(watches, np.array(totals), np.array(plain)) | {"recall_at_10": recall(found, data.truth)}, found


def summarize(watches: list[Stopwatch], totals: np.ndarray, plain: np.ndarray) -> dict:
    """Percentiles of the totals, mean and median of each phase (ms), and the driver checks."""
    phases = np.array([[w.spent[p] for p in PHASES] for w in watches]) * 1e3
    ms, plain_ms = totals * 1e3, plain * 1e3
    return {
        "queries": len(ms),
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "mean_ms": float(ms.mean()),
        "phase_mean_ms": dict(zip(PHASES, phases.mean(axis=0).tolist())),
        "phase_p50_ms": dict(zip(PHASES, np.percentile(phases, 50, axis=0).tolist())),
        "phase_sum_max_gap_us": float(np.abs(ms - phases.sum(axis=1)).max() * 1e3),
        "phase_sum_mean_gap_us": float(np.abs(ms - phases.sum(axis=1)).mean() * 1e3),
        "plain_query_p50_ms": float(np.percentile(plain_ms, 50)),
        "plain_query_p95_ms": float(np.percentile(plain_ms, 95)),
        "candidates_mean": float(np.mean([w.candidates for w in watches])),
        "widened_queries": int(sum(w.bucket_reads > 1 for w in watches)),
    }


def measure_store(kind: str, data: Data, args: argparse.Namespace) -> tuple[dict, list[list[int]]]:
    """Load, index, bytes and queries of one store, on a fresh bucket Redis of its own."""
    row: dict[str, Any] = {"store": kind, "n": len(data.ids), "loadavg_start": load_average()}
    print(f"n={len(data.ids):,} {kind}: loading", flush=True)
    buckets = RedisServer()
    try:
        client = redis.Redis.from_url(buckets.url)
        with open_store(kind) as (store, store_bytes):
            rss = rss_bytes()
            row["put_s"] = load(store, data, args.batch)
            row["client_rss_delta"] = rss_bytes() - rss
            row["settle_s"] = settle(kind, store)
            row["store_size"] = store_bytes()
            base = used_memory(client)
            lsh = LSHRS(name="stores", redis=client, store=store, **index_options(args))
            row["params"] = {k: lsh.params[k] for k in ("num_tables", "num_bits")} | {"num_probes": lsh.num_probes}
            t0 = time.perf_counter()
            indexed = lsh.index()
            row["index_s"] = time.perf_counter() - t0
            assert indexed == len(data.ids), (indexed, len(data.ids))
            row["redis_bucket_bytes"] = used_memory(client) - base
            if args.top_p is not None:  # a service that reranks top_p keeps its sketch cache warm
                t0 = time.perf_counter()
                lsh.warm()
                row["sketch_warm_s"] = time.perf_counter() - t0
            row["query"], found = measure_queries(lsh, data, args.top_p)
            lsh.close()
        client.close()
    finally:
        buckets.stop()
    n = len(data.ids)
    row |= {"put_vectors_per_s": n / row["put_s"], "index_vectors_per_s": n / row["index_s"]}
    row |= {"redis_bucket_bytes_per_vector": row["redis_bucket_bytes"] / n}
    row |= {"store_bytes_per_vector": row["store_size"]["bytes"] / n, "loadavg_end": load_average()}
    print(json.dumps(row), flush=True)
    return row, found


def measure_size(n: int, args: argparse.Namespace) -> dict:
    """Every store at one size, sequentially; answers compared with the first store's."""
    t0 = time.perf_counter()
    data = make_data(n, args.dim, args.queries, args.chunk)
    print(f"n={n:,}: data and exact top-10 in {time.perf_counter() - t0:.1f} s", flush=True)
    runs, first = [], None
    for kind in args.stores:
        row, found = measure_store(kind, data, args)
        first = first or found
        row["query"]["same_as_first_store"] = float(np.mean([a == b for a, b in zip(found, first)]))
        runs.append(row)
        gc.collect()
    return {"n": n, "runs": runs}


# -- command line and report ---------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=300, help="single queries timed per store and size")
    parser.add_argument("--stores", nargs="+", default=list(STORES), choices=STORES)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--batch", type=int, default=10_000, help="rows per store.put")
    parser.add_argument("--chunk", type=int, default=50_000, help="rows per generator chunk (scale.py's)")
    parser.add_argument("--num-tables", type=int, help="default: the library's")
    parser.add_argument("--num-bits", type=int, help="default: the library's")
    parser.add_argument("--num-probes", type=int, help="default: the library's")
    parser.add_argument("--top-p", type=float, help="rerank this share of the candidates, by sketch (cache warm)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory of stores.json, .md and .png")
    args = parser.parse_args()
    report: dict[str, Any] = {
        "lshrs": __version__,
        "code": code_state(),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, shared with other jobs",
        "hiredis": _has_hiredis(),
        "command": command(args),
        "dim": args.dim,
        "batch": args.batch,
        "params_given": index_options(args),
        "top_p": args.top_p,
        "loadavg_start": load_average(),
    }
    t0 = time.perf_counter()
    report["sizes"] = [measure_size(n, args) for n in args.sizes]
    report |= {"total_wall_s": time.perf_counter() - t0, "loadavg_end": load_average()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "stores.json").write_text(json.dumps(report, indent=2))
    (args.out / "stores.md").write_text(markdown(report))
    plot(report, args.out / "stores.png")
    print((args.out / "stores.md").read_text())


def index_options(args: argparse.Namespace) -> dict[str, int]:
    """LSHRS parameters given on the command line; the rest are the library's defaults."""
    given = {"num_tables": args.num_tables, "num_bits": args.num_bits, "num_probes": args.num_probes}
    return {k: v for k, v in given.items() if v is not None}


def command(args: argparse.Namespace) -> str:
    parts = [".venv/bin/python benchmarks/stores.py", "--sizes", *map(str, args.sizes), "--queries", str(args.queries)]
    if list(args.stores) != list(STORES):
        parts += ["--stores", *(f"'{s}'" for s in args.stores)]
    parts += [f"--{k.replace('_', '-')} {v}" for k, v in index_options(args).items()]
    if args.top_p is not None:
        parts += ["--top-p", str(args.top_p)]
    return " ".join(parts)


def _has_hiredis() -> bool:
    try:
        import hiredis  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        return False
    return True


def markdown(r: dict) -> str:
    lines = [
        "# Where should the vectors live? Four stores, same vectors, same queries",
        "",
        f"lshrs {r['lshrs']}, Python {r['python']}, {r['machine']}; load average (1, 5, 15 min) "
        f"{r['loadavg_start']} at the start, {r['loadavg_end']} at the end; total wall time "
        f"{r['total_wall_s'] / 60:.0f} min. redis-py parser: {'hiredis' if r['hiredis'] else 'pure Python'}.",
        f"Commit {r['code']['commit'][:10]}; core files with uncommitted edits during the run: "
        f"{', '.join(x.split()[-1] for x in r['code']['uncommitted_core_files'] if x) or 'none'}.",
        f"Reproduce: `{_reproduce(r)}`.",
        "",
        *_method_text(r),
    ]
    for size in r["sizes"]:
        lines += _size_table(size)
    lines += _recommendation(r)
    return "\n".join(lines) + "\n"


def _reproduce(r: dict) -> str:
    """The command, with the parameters pinned when they were the defaults of the day (defaults change)."""
    if r["params_given"]:
        return str(r["command"])
    p = r["sizes"][0]["runs"][0]["params"]
    return f"{r['command']} --num-tables {p['num_tables']} --num-bits {p['num_bits']} --num-probes {p['num_probes']}"


def _method_text(r: dict) -> list[str]:
    p = r["sizes"][0]["runs"][0]["params"]
    which = "parameters given on the command line" if r["params_given"] else "the library's default parameters"
    return [
        f"Clustered synthetic {r['dim']}-d float32 vectors (the generator of benchmarks/scale.py); queries are fresh",
        f"draws from the same clusters, top_k={TOP_K}, {which} (L={p['num_tables']}, "
        f"K={p['num_bits']}, {p['num_probes']} probes"
        + (f", top_p {r['top_p']} by sketch, cache warmed by `LSHRS.warm()` after the build" if r.get("top_p") else "")
        + "). Each store runs alone, with its own servers",
        "(tests/servers.py: Redis 7 without persistence, Postgres with `fsync=off`, a test setting) started before",
        "and stopped after it; Redis hashes live on a Redis server apart from the buckets'.",
        f"**load**: `store.put` in batches of {r['batch']:,} (Postgres: then `VACUUM ANALYZE`, not counted).",
        "**index**: `LSHRS.index()` over the loaded store (scan, hash, bucket writes).",
        "**Phases** (mean ms over the single queries; they add up to the mean): the query is driven by a copy",
        "of `lshrs.steps.run` that times each step call and the generator's CPU work between them. An untimed",
        "pass over all the queries comes first (warm connections, prepared statements and page caches); then",
        "each query runs through the timing driver and through plain `LSHRS.query`, in alternating order.",
        "*hashing* = probe codes before the bucket read; *bucket read* = `buckets.fetch` (Redis round trip +",
        "parse); *ranking* = collision counting of the candidates; *candidate fetch* = `store.get(ids,",
        "payload=False)` of every candidate; *rerank* = exact cosine + top_k; *payload* = `store.get(top_k ids,",
        "payload=True)`; *other* = request validation and building the hits.",
        "**Bytes per vector**: Redis buckets = INFO used_memory delta of the bucket server over `LSHRS()` +",
        "`index()` (the hyperplanes included); store = MemoryStore array bytes, SQLite file (WAL apart), Postgres",
        "`pg_total_relation_size` (heap, TOAST, primary key), Redis hashes used_memory delta of their server.",
        "",
    ]


def _size_table(size: dict) -> list[str]:
    n = size["n"]
    lines = [
        f"## {n:,} vectors",
        "",
        "| store | load s (vec/s) | index vec/s | p50 ms | p95 ms | mean ms | hashing | bucket read | ranking "
        "| candidate fetch | rerank | payload | other | recall@10 | Redis bucket B/vector | store B/vector |",
        "| --- " + "| ---: " * 15 + "|",
    ]
    for s in size["runs"]:
        q, ph = s["query"], s["query"]["phase_mean_ms"]
        lines.append(
            f"| {s['store']} | {s['put_s']:.1f} ({s['put_vectors_per_s']:,.0f}) | {s['index_vectors_per_s']:,.0f} "
            f"| {q['p50_ms']:.1f} | {q['p95_ms']:.1f} | {q['mean_ms']:.1f} | "
            + " | ".join(f"{ph[p]:.2f}" for p in PHASES)
            + f" | {q['recall_at_10']:.3f} | {s['redis_bucket_bytes_per_vector']:.1f} "
            f"| {s['store_bytes_per_vector']:,.0f} |"
        )
    lines += ["", *_size_notes(size), ""]
    return lines


def _size_notes(size: dict) -> list[str]:
    runs = size["runs"]
    q0 = runs[0]["query"]
    same = ", ".join(f"{s['store']} {100 * s['query']['same_as_first_store']:.0f} %" for s in runs[1:])
    plain = ", ".join(f"{s['store']} {s['query']['plain_query_p50_ms']:.1f}" for s in runs)
    gap = max(s["query"]["phase_sum_max_gap_us"] for s in runs)

    load = ", ".join(f"{s['store']} {s['loadavg_start'][0]} -> {s['loadavg_end'][0]}" for s in runs)
    notes = [
        f"- Load average (1 min) at the start and end of each store's run: {load}.",
        f"- {q0['queries']} single queries per store; candidates fetched per query: {q0['candidates_mean']:,.0f} "
        f"on average ({100 * q0['candidates_mean'] / size['n']:.2f} % of the vectors); queries that widened "
        f"their probes: {', '.join(str(s['query']['widened_queries']) for s in runs)}.",
        f"- Same top-10 ids, in the same order, as {runs[0]['store']}: {same or 'n/a'} of the queries.",
        f"- Check of the driver: phases sum to the measured total within {gap:.0f} us per query; the same queries "
        f"through plain `LSHRS.query`, p50 ms: {plain}.",
    ]
    return notes + [_store_note(s) for s in runs if s["store"] in STORE_NOTES]


STORE_NOTES = {
    "memory": "- MemoryStore: its arrays hold {mb:,.0f} MB; the process RSS grew {rss:,.0f} MB in the load.",
    "sqlite": "- SQLite: file {mb:,.0f} MB ({page_size:,}-byte pages), plus a write-ahead log of {wal:,.0f} MB.",
    "postgres": "- Postgres: {mb:,.0f} MB = heap {heap:,.1f} + primary key {indexes:,.1f} + TOAST {toast:,.1f} MB; "
    "VACUUM ANALYZE after the load {settle:.1f} s.",
    "redis hashes": "- Redis hashes: {mb:,.0f} MB of used_memory on their own server.",
}


def _store_note(s: dict) -> str:
    size = s["store_size"]
    mb = {k: size.get(k, 0) / 1e6 for k in ("heap", "indexes", "toast")}
    return STORE_NOTES[s["store"]].format(
        mb=size["bytes"] / 1e6,
        rss=s["client_rss_delta"] / 1e6,
        page_size=size.get("page_size", 0),
        wal=size.get("wal_bytes", 0) / 1e6,
        settle=s["settle_s"],
        **mb,
    )


def _p50(s: dict) -> float:
    return float(s["query"]["p50_ms"])


def _recommendation(r: dict) -> list[str]:
    """Which store when, read off the largest size measured: every figure quoted is in the tables above."""
    size = r["sizes"][-1]
    ranked = sorted(size["runs"], key=_p50)
    by = {s["store"]: s for s in size["runs"]}
    lines = ["## Which store when (read off the numbers above)", "", _speed_text(r, size, ranked)]
    if any(s["store"] != "memory" for s in ranked):
        lines += [_fetch_text(size, ranked, r["dim"])]
    if "memory" in by:
        lines += [_memory_text(r, by["memory"], ranked)]
    if "redis hashes" in by and ranked[-1]["store"] == "redis hashes":
        lines += [_redis_text(by["redis hashes"], ranked)]
    lines += [_bytes_text(r, size)]
    peak = max(max(s["loadavg_start"][0], s["loadavg_end"][0]) for z in r["sizes"] for s in z["runs"])
    cores = os.cpu_count() or 1
    if peak > cores:
        lines.append(
            f"- Caveat: the 1-minute load average reached {peak} on {cores} cores, so the client, Redis and the "
            "databases waited for the CPU behind other jobs; compare stores within a table and read absolute "
            "times as upper bounds."
        )
    return [*lines, ""]


def _speed_text(r: dict, size: dict, ranked: list[dict]) -> str:
    same = all(s["query"]["same_as_first_store"] == 1.0 for z in r["sizes"] for s in z["runs"])
    order = " < ".join(f"{s['store']} {_p50(s):.0f} ms" for s in ranked)
    orders = {tuple(s["store"] for s in sorted(z["runs"], key=_p50)) for z in r["sizes"]}
    consistent = "the same order at every size measured" if len(orders) == 1 else "other sizes differ: see above"
    answers = (
        "Every store returned the same top-10 ids in the same order for every query, so the choice is "
        "latency, load time and bytes, plus what the store gives besides (a server other processes share, "
        "durability)."
        if same
        else "The stores did not all return the same ids (see the notes above)."
    )
    return f"- At {size['n']:,} vectors the p50 order is {order} ({consistent}). {answers}"


def _fetch_text(size: dict, ranked: list[dict], dim: int) -> str:
    shares = {s["store"]: s["query"]["phase_mean_ms"]["candidate fetch"] / s["query"]["mean_ms"] for s in ranked}
    outside = [s for s in ranked if s["store"] != "memory"]
    cands = ranked[0]["query"]["candidates_mean"]
    spread = (
        f"{100 * min(shares[s['store']] for s in outside):.0f}-{100 * max(shares[s['store']] for s in outside):.0f}"
    )
    return (
        f"- Outside the process, the query is the candidate fetch: {spread} % of the mean query for "
        f"{', '.join(s['store'] for s in outside)}, reading {cands:,.0f} candidate vectors "
        f"({cands * 4 * dim / 1e6:.0f} MB of float32) per query. Fewer candidates "
        "(top_p, more bits per table: benchmarks/results/scale.md) shrink that phase for every store."
    )


def _memory_text(r: dict, mem: dict, ranked: list[dict]) -> str:
    outside = [s for s in ranked if s["store"] != "memory"]
    first = r["sizes"][0]["runs"][[s["store"] for s in r["sizes"][0]["runs"]].index("memory")]
    fastest = ranked[0]["store"] == "memory"
    return (
        f"- MemoryStore {'is the fastest' if fastest else 'is not the fastest'} (p50 {_p50(mem):.0f} ms"
        + (f", {_p50(outside[0]) / _p50(mem):.1f}x below {outside[0]['store']}" if fastest and outside else "")
        + f") where each querying process can hold every vector ({mem['store_size']['bytes'] / 1e6:,.0f} MB of arrays "
        f"at {mem['n']:,}) and reload them at start: nothing persists."
        + (
            f" Its load slows with size ({first['put_vectors_per_s']:,.0f} vec/s at {first['n']:,}, "
            f"{mem['put_vectors_per_s']:,.0f} vec/s at {mem['n']:,}): every put copies the arrays and re-sorts "
            "the id index."
            if first is not mem
            else ""
        )
    )


def _redis_text(rs: dict, ranked: list[dict]) -> str:
    share = rs["query"]["phase_mean_ms"]["candidate fetch"] / rs["query"]["mean_ms"]
    return (
        f"- Keeping the vectors in Redis next to the buckets does not make queries faster: Redis hashes are the "
        f"slowest here (p50 {_p50(rs):.0f} ms, {_p50(rs) / _p50(ranked[0]):.1f}x the fastest), the candidate fetch "
        f"(one pipelined HMGET per candidate) is {100 * share:.0f} % of it, and they take "
        f"{rs['store_bytes_per_vector']:,.0f} B/vector of RAM."
    )


def _bytes_text(r: dict, size: dict) -> str:
    runs = sorted(size["runs"], key=lambda s: s["store_bytes_per_vector"])
    listed = ", ".join(f"{s['store']} {s['store_bytes_per_vector']:,.0f}" for s in runs)
    buckets = np.mean([s["redis_bucket_bytes_per_vector"] for s in size["runs"]])
    return (
        f"- Bytes per vector in the store (raw float32: {4 * r['dim']:,}): {listed}; the buckets add "
        f"{buckets:.0f} B/vector in Redis whatever the store. For a durable store on disk the data favour "
        + _durable_choice(size)
    )


def _durable_choice(size: dict) -> str:
    """SQLite against Postgres on latency, load rate and bytes, as measured."""
    by = {s["store"]: s for s in size["runs"]}
    if "sqlite" not in by or "postgres" not in by:
        return "whichever of the two was measured."
    lite, pg = by["sqlite"], by["postgres"]
    faster = "SQLite" if _p50(lite) < _p50(pg) else "Postgres"
    return (
        f"{faster} on latency (p50 SQLite {_p50(lite):.0f} ms, Postgres {_p50(pg):.0f} ms), "
        f"{'SQLite' if lite['put_vectors_per_s'] > pg['put_vectors_per_s'] else 'Postgres'} on load rate "
        f"({lite['put_vectors_per_s']:,.0f} against {pg['put_vectors_per_s']:,.0f} vec/s) and "
        f"{'Postgres' if pg['store_bytes_per_vector'] < lite['store_bytes_per_vector'] else 'SQLite'} on bytes; "
        "SQLite is one file in the querying process, Postgres a server many processes and machines can share."
    )


def plot(r: dict, path: Path) -> None:
    """Left: stacked phase bars per store, one panel per size. Right: bytes per vector (buckets + store)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.patches
    import matplotlib.pyplot as plt

    sizes = r["sizes"]
    fig = plt.figure(figsize=(14, 2.4 + 1.8 * len(sizes)), layout="constrained")
    grid = fig.add_gridspec(len(sizes), 2, width_ratios=[3, 2])
    colors = dict(zip(PHASES, plt.get_cmap("tab10").colors))
    for row, size in enumerate(sizes):
        _phase_panel(fig.add_subplot(grid[row, 0]), size, colors)
    _bytes_panel(fig.add_subplot(grid[:, 1]), sizes)
    handles = [matplotlib.patches.Patch(color=colors[p], label=p) for p in PHASES]
    fig.legend(handles=handles, loc="outside lower left", ncol=len(PHASES), fontsize=8, title="query phases")
    fig.suptitle(f"lshrs: where should the vectors live? (single queries, top_k={TOP_K}, {r['dim']}-d)")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _phase_panel(ax: Any, size: dict, colors: dict) -> None:
    labels = [s["store"] for s in size["runs"]]
    left = np.zeros(len(labels))
    for phase in PHASES:
        widths = np.array([s["query"]["phase_mean_ms"][phase] for s in size["runs"]])
        ax.barh(labels, widths, left=left, color=colors[phase], label=phase)
        left += widths
    for y, s in enumerate(size["runs"]):
        ax.text(left[y], y, f" p50 {s['query']['p50_ms']:.1f}", va="center", fontsize=8)
    ax.set_xlim(0, left.max() * 1.25)
    ax.invert_yaxis()
    ax.set_title(f"{size['n']:,} vectors: mean query time by phase (ms)", fontsize=10)


def _bytes_panel(ax: Any, sizes: list[dict]) -> None:
    labels, buckets, store = [], [], []
    for size in sizes:
        for s in size["runs"]:
            labels.append(f"{s['store']} @ {size['n']:,}")
            buckets.append(s["redis_bucket_bytes_per_vector"])
            store.append(s["store_bytes_per_vector"])
    ax.barh(labels, store, color="tab:gray")
    ax.barh(labels, buckets, left=store, color="tab:olive")
    for y, (a, b) in enumerate(zip(store, buckets)):
        ax.text(a + b, y, f" {a:,.0f} + {b:.0f}", va="center", fontsize=8)
    ax.set_xlim(0, max(a + b for a, b in zip(store, buckets)) * 1.3)
    ax.invert_yaxis()
    ax.set_title("bytes per vector: store (gray) + Redis buckets (olive)", fontsize=10)


if __name__ == "__main__":
    main()
