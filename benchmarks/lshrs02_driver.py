"""Drive lshrs 0.2.0b1 (the earlier PyPI release) for the comparison, from its own virtualenv.

It has the same import name as this checkout, so it cannot share a process with it:
benchmarks/alternatives.py starts this script with benchmarks/cache/lshrs02-venv/bin/python -I
(-I keeps the checkout's lshrs/ off sys.path) and talks JSON lines over stdin/stdout:

    start:   lshrs02_driver.py --redis-url redis://127.0.0.1:PORT/0 --vectors corpus.npy
             -> {"ready": true, "version": "0.2.0b1", "config": {...}}
    {"op": "build"}                              -> {"seconds": ...}         (ids are the row numbers)
    {"op": "query", "vector": b64 float32, "k": 10, "probes": 0, "rerank": false}  -> {"ids": [...]}
    {"op": "query_file", "queries": q.npy, "out": ids.npy, "k": ..., "probes": ..., "rerank": ...}
                                                 -> {"seconds": ...}         (ids padded with -1)
    {"op": "close"}                              -> {"closed": true}

The index uses 0.2.0b1's documented defaults (num_perm=128, similarity_threshold=0.5, which its
get_optimal_config turns into 16 bands x 8 rows; seed 42; buffer_size 10,000). 0.2.0b1 stores only
bucket sets in Redis, never vectors: with rerank=false a query returns the ids with the most band
collisions (its get_top_k); with rerank=true it reranks every candidate by cosine through the
vector_fetch_fn the user supplies (here rows of the same .npy, in this process) and keeps the top k
(query(top_p=1.0, top_k=k)). `probes` is its multi-probe option (extra buckets per band).
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from urllib.parse import urlparse

import numpy as np

from lshrs import LSHRS, __version__


def open_index(redis_url: str, vectors: np.ndarray) -> LSHRS:
    """An LSHRS with the release's defaults on the given Redis; reranking reads rows of `vectors`."""
    url = urlparse(redis_url)
    db = int(url.path.lstrip("/") or 0)
    return LSHRS(
        dim=vectors.shape[1],
        redis_host=url.hostname or "localhost",
        redis_port=url.port or 6379,
        redis_db=db,
        redis_prefix="lsh02",
        vector_fetch_fn=lambda ids: vectors[np.asarray(ids, dtype=np.int64)],
    )


def search(lsh: LSHRS, vector: np.ndarray, k: int, probes: int, rerank: bool) -> list[int]:
    if rerank:
        return [int(i) for i, _ in lsh.query(vector, top_k=k, top_p=1.0, probes=probes)]
    return [int(i) for i in lsh.query(vector, top_k=k, probes=probes)]


def build(lsh: LSHRS, vectors: np.ndarray) -> dict:
    t0 = time.perf_counter()
    lsh.index(list(range(len(vectors))), vectors)
    return {"seconds": time.perf_counter() - t0}


def query_file(lsh: LSHRS, request: dict) -> dict:
    """A batch: 0.2.0b1 has no batch query, so a loop over its query()."""
    queries = np.load(request["queries"])
    k = request["k"]
    out = np.full((len(queries), k), -1, dtype=np.int64)
    t0 = time.perf_counter()
    for row, vector in enumerate(queries):
        ids = search(lsh, vector, k, request["probes"], request["rerank"])
        out[row, : len(ids)] = ids
    seconds = time.perf_counter() - t0
    np.save(request["out"], out)
    return {"seconds": seconds}


def handle(lsh: LSHRS, vectors: np.ndarray, request: dict) -> dict:
    op = request["op"]
    if op == "build":
        return build(lsh, vectors)
    if op == "query":
        vector = np.frombuffer(base64.b64decode(request["vector"]), dtype=np.float32)
        return {"ids": search(lsh, vector, request["k"], request["probes"], request["rerank"])}
    if op == "query_file":
        return query_file(lsh, request)
    raise ValueError(f"unknown op {op!r}")


def reply(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--vectors", required=True, help=".npy of float32 vectors; ids are row numbers")
    args = parser.parse_args()
    vectors = np.load(args.vectors)
    lsh = open_index(args.redis_url, vectors)
    stats = lsh.stats()
    config = {key: stats[key] for key in ("num_perm", "num_bands", "rows_per_band")}
    reply({"ready": True, "version": __version__, "config": config})
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "close":
            break
        try:
            reply(handle(lsh, vectors, request))
        except Exception as exc:  # report to the adapter instead of dying silently
            reply({"error": f"{type(exc).__name__}: {exc}"})
    lsh.close()
    reply({"closed": True})


if __name__ == "__main__":
    main()
