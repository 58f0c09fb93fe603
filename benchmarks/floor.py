"""What a centroid query costs without Redis, and with each code scorer: the Python side's floor.

    .venv/bin/python benchmarks/floor.py [--queries 300] [--rounds 3]

The same held-out queries of the real corpus (realdata.py, 121,900 MiniLM
vectors less the queries; MemoryStore, centroid family at the defaults,
real Redis), one at a time with `query()`, in three ways, interleaved round
by round so machine noise hits them alike:

- **shipped**: as lshrs runs (one MGET of the probed buckets and the
  index's counters);
- **buckets in memory**: every bucket's bytes already in this process (read
  once before the rounds), only the counters read from Redis per query: a
  client-side bucket cache that still asks Redis one small question;
- **no Redis**: the same, with the counters too from memory: what is left is
  the centroid scores, the code ranking, the store read, the exact rerank
  and the Python around them.

Each way runs with both code scorers (lshrs.kernels): compiled with numba,
and numpy. `query_many` of all the queries is timed too, per scorer, as
shipped (the best of three batches each round, the median round). The
buckets are swapped in at `Buckets.fetch`, so every other line of the
query runs as shipped, and the answers are the same (checked).
Writes benchmarks/results/floor.json and floor.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

import realdata  # noqa: E402
from servers import RedisServer  # noqa: E402

from lshrs import LSHRS, MemoryStore, kernels  # noqa: E402
from lshrs.buckets import Buckets  # noqa: E402
from lshrs.definition import ENTRIES, GENERATION  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def held_buckets(buckets: Buckets) -> dict[bytes, bytes]:
    """Every bucket string of the index, read once."""
    keys = list(buckets.client.scan_iter(match=buckets.prefix + b"b:*", count=10_000))
    return dict(zip(keys, buckets.client.mget(keys)))


def from_memory(buckets: Buckets, held: dict[bytes, bytes], counters: list[Any] | None) -> Any:
    """A `fetch` that takes the bucket bytes from `held`; the counters from Redis, or from `counters`."""

    def fetch(tables: np.ndarray, codes: np.ndarray) -> Any:
        calls, parse = buckets._fetch_calls(tables, codes)
        keys = calls[0][1]
        read = counters if counters is not None else buckets.client.hmget(buckets.meta_key, [ENTRIES, GENERATION])
        return buckets._unpack(parse([[held.get(k) for k in keys], read]))

    return fetch


def timed(lsh: LSHRS, queries: np.ndarray) -> tuple[list[float], list[list[int]]]:
    """Milliseconds per query and the ids each returned."""
    times, answers = [], []
    for q in queries:
        t0 = time.perf_counter()
        hits = lsh.query(q, top_k=10)
        times.append((time.perf_counter() - t0) * 1e3)
        answers.append([h.id for h in hits])
    return times, answers


def _batch_seconds(lsh: LSHRS, queries: np.ndarray) -> float:
    t0 = time.perf_counter()
    lsh.query_many(queries, top_k=10)
    return time.perf_counter() - t0


def _numba_version() -> str:
    try:
        import numba
    except ImportError:
        return "not installed"
    return str(numba.__version__)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    _, vectors = realdata.load()
    corpus, queries, _ = realdata.split_queries(vectors, args.queries)
    server = RedisServer()
    try:
        store = MemoryStore()
        store.put(np.arange(len(corpus)), corpus)
        lsh = LSHRS(name="floor", redis=redis.Redis.from_url(server.url), store=store)
        lsh.index()
        buckets = lsh.attachment.buckets
        held = held_buckets(buckets)
        counters = buckets.client.hmget(buckets.meta_key, [ENTRIES, GENERATION])
        ways = {
            "shipped": None,
            "buckets in memory, counters from Redis": from_memory(buckets, held, None),
            "no Redis": from_memory(buckets, held, counters),
        }
        compiled = kernels.score_runs
        scorers = {"compiled": compiled, "numpy": lambda: None}
        if compiled() is None:
            del scorers["compiled"]
        timed(lsh, queries[:50])  # warm-up, and the kernel compiled
        times: dict[tuple[str, str], list[float]] = {(s, w): [] for s in scorers for w in ways}
        batch: dict[str, list[float]] = {s: [] for s in scorers}
        answers: dict[tuple[str, str], list[list[int]]] = {}
        for _ in range(args.rounds):
            for scorer, choice in scorers.items():
                kernels.score_runs = choice  # type: ignore[assignment]
                for way, fetch in ways.items():
                    if fetch is None:
                        vars(buckets).pop("fetch", None)
                    else:
                        buckets.fetch = fetch  # type: ignore[method-assign]
                    spent, answers[scorer, way] = timed(lsh, queries)
                    times[scorer, way] += spent
                vars(buckets).pop("fetch", None)
                batch[scorer].append(len(queries) / min(_batch_seconds(lsh, queries) for _ in range(3)))
        kernels.score_runs = compiled  # type: ignore[assignment]
        reference = answers[next(iter(answers))]
        same = all(found == reference for found in answers.values())
        lsh.clear()
    finally:
        server.stop()
    rows = [
        {"scorer": scorer, "way": way, "p50_ms": statistics.median(t), "p95_ms": float(np.percentile(t, 95)),
         "mean_ms": np.mean(t), "batch_qps": statistics.median(batch[scorer]) if way == "shipped" else None}
        for (scorer, way), t in times.items()
    ]  # fmt: skip
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared)",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": _numba_version(),
        "corpus": len(corpus),
        "queries": len(queries),
        "rounds": args.rounds,
        "bucket_bytes_held": sum(len(v or b"") for v in held.values()),
        "answers_identical": same,
        "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "floor.json").write_text(json.dumps(result, indent=2))
    lines = [
        "# A centroid query without Redis, and with each code scorer",
        "",
        f"{result['corpus']:,} real MiniLM vectors (MemoryStore, centroid family at the defaults), "
        f"{result['queries']} held-out queries one at a time (and as one query_many), {args.rounds} interleaved "
        "rounds; "
        f"{result['machine']}, Python {result['python']}, numpy {result['numpy']}, numba {result['numba']}. "
        f"Answers identical in every way: {'yes' if same else 'NO'}.",
        "",
        "Reproduce: `.venv/bin/python benchmarks/floor.py`.",
        "",
        "| scorer | way | p50 ms | p95 ms | mean ms | query_many QPS |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
        *(
            f"| {r['scorer']} | {r['way']} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | {r['mean_ms']:.2f} | "
            + ("" if r["batch_qps"] is None else f"{r['batch_qps']:,.0f}")
            + " |"
            for r in rows
        ),
        "",
    ]
    (RESULTS / "floor.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
