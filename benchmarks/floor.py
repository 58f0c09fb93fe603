"""What a centroid query costs without Redis: the floor the Python side sets, measured by taking Redis away.

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

The buckets are swapped in at `Buckets.fetch`, so every other line of the
query runs as shipped, and the answers are the same (checked). Writes
benchmarks/results/floor.json and floor.md.
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

from lshrs import LSHRS, MemoryStore  # noqa: E402
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
        timed(lsh, queries[:50])  # warm-up
        times: dict[str, list[float]] = {way: [] for way in ways}
        answers: dict[str, list[list[int]]] = {}
        for _ in range(args.rounds):
            for way, fetch in ways.items():
                if fetch is None:
                    vars(buckets).pop("fetch", None)
                else:
                    buckets.fetch = fetch  # type: ignore[method-assign]
                spent, answers[way] = timed(lsh, queries)
                times[way] += spent
        vars(buckets).pop("fetch", None)
        same = all(answers[way] == answers["shipped"] for way in ways)
        lsh.clear()
    finally:
        server.stop()
    rows = [
        {"way": way, "p50_ms": statistics.median(t), "p95_ms": float(np.percentile(t, 95)), "mean_ms": np.mean(t)}
        for way, t in times.items()
    ]
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared)",
        "python": platform.python_version(),
        "numpy": np.__version__,
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
        "# A centroid query without Redis: the Python side's floor",
        "",
        f"{result['corpus']:,} real MiniLM vectors (MemoryStore, centroid family at the defaults), "
        f"{result['queries']} held-out queries one at a time, {args.rounds} interleaved rounds; "
        f"{result['machine']}, Python {result['python']}, numpy {result['numpy']}. "
        f"Answers identical in every way: {'yes' if same else 'NO'}.",
        "",
        "Reproduce: `.venv/bin/python benchmarks/floor.py`.",
        "",
        "| way | p50 ms | p95 ms | mean ms |",
        "| --- | ---: | ---: | ---: |",
        *(f"| {r['way']} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | {r['mean_ms']:.2f} |" for r in rows),
        "",
    ]
    (RESULTS / "floor.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
