"""What would close the query-time gap: buckets drawn from the data instead of random hyperplanes.

    .venv/bin/python benchmarks/partition.py [--queries 200] [--centroids 256 1024]

Offline (numpy only), on realdata.py's corpus and held-out queries. lshrs'
random-hyperplane buckets need 12-19 % of this corpus as candidates to
reach recall@10 0.95 (compare.md), because a query's true neighbours sit
at cosine 0.5-0.8 and a random hyperplane separates them from the query
often. Buckets cut along the data's own clusters (spherical k-means
centroids, one bucket per centroid, a query probing its nearest centroids:
an inverted file) keep neighbours together. The layout in Redis would stay
the same (bucket -> ids); only how a vector and a query pick their buckets
changes. This measures the candidate share that would need, to say whether
that change would close the gap. Writes benchmarks/results/partition.json
and partition.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

import realdata  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
TRAIN = 20_000  # k-means is trained on a sample, as a build would
ITERATIONS = 15
PROBES = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def spherical_kmeans(data: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Unit centroids maximising the summed cosine of each row to its centroid."""
    centroids = data[rng.choice(len(data), k, replace=False)].copy()
    for _ in range(ITERATIONS):
        nearest = np.argmax(data @ centroids.T, axis=1)
        sums = np.zeros_like(centroids)
        np.add.at(sums, nearest, data)
        empty = np.linalg.norm(sums, axis=1) == 0
        sums[empty] = data[rng.choice(len(data), int(empty.sum()), replace=False)]  # reseed empty clusters
        centroids = unit(sums)
    return centroids


def assign(data: np.ndarray, centroids: np.ndarray, chunk: int = 20_000) -> np.ndarray:
    return np.concatenate([np.argmax(data[i : i + chunk] @ centroids.T, axis=1) for i in range(0, len(data), chunk)])


def study(corpus: np.ndarray, queries: np.ndarray, truth: np.ndarray, k: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    centroids = spherical_kmeans(corpus[rng.choice(len(corpus), min(TRAIN, len(corpus)), replace=False)], k, rng)
    train_s = time.perf_counter() - t0
    bucket = assign(corpus, centroids)
    sizes = np.bincount(bucket, minlength=k)
    order = np.argsort(-(queries @ centroids.T), axis=1)
    truth_bucket = bucket[truth[:, :10]]
    rows = []
    for probes in PROBES:
        if probes > k:
            break
        probed = order[:, :probes]
        hit = (truth_bucket[:, :, None] == probed[:, None, :]).any(axis=2)
        candidates = sizes[probed].sum(axis=1)
        row = {
            "centroids": k,
            "probes": probes,
            "recall_at_10_all_candidates": float(hit.mean()),
            "candidates_fraction": float(candidates.mean() / len(corpus)),
            "largest_bucket_fraction": float(sizes.max() / len(corpus)),
            "train_s": train_s,
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def markdown(result: dict) -> str:
    lines = [
        f"# Data-drawn buckets on {result['corpus']:,} real MiniLM vectors ({result['queries']} held-out queries)",
        "",
        "Reproduce: `.venv/bin/python benchmarks/partition.py`. Offline, numpy only: spherical k-means",
        f"({ITERATIONS} iterations on {TRAIN:,} sampled rows), every vector in its nearest centroid's bucket,",
        "a query probing its nearest centroids' buckets. *recall* is recall@10 when every candidate is",
        "reranked (the share of true neighbours in the probed buckets). lshrs' random hyperplanes need",
        "12-19 % of this corpus as candidates for recall 0.95 ([compare.md](compare.md)).",
        f"Load average {result['load_average'][0]:.2f} at the start.",
        "",
        "| centroids | probes | recall@10 | candidates (share of corpus) | largest bucket |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['centroids']:,} | {r['probes']} | {r['recall_at_10_all_candidates']:.3f} "
            f"| {100 * r['candidates_fraction']:.2f} % | {100 * r['largest_bucket_fraction']:.2f} % |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--centroids", type=int, nargs="+", default=[256, 1024, 4096])
    args = parser.parse_args()
    load = os.getloadavg()
    _, vectors = realdata.load()
    held, keep = realdata.split_rows(len(vectors), args.queries)
    corpus, queries = unit(vectors[keep]), unit(vectors[held])
    truth = realdata.exact_neighbours(queries, corpus, 10)
    rows = [row for k in args.centroids for row in study(corpus, queries, truth, k, seed=0)]
    result = {"corpus": len(corpus), "queries": len(queries), "load_average": load, "rows": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "partition.json").write_text(json.dumps(result, indent=2))
    (RESULTS / "partition.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
