"""Embedding backends on this CPU: passages/s and what they do to the neighbours, side by side in one run.

    .venv/bin/python benchmarks/embedding.py [--passages 1000] [--rounds 2] [--queries 200]

Texts: the Wikipedia slice's passages (realdata.py's wiki-slice, what `lshrs
demo` indexes). Variants: PyTorch float32 (sentence-transformers, the old
path), OpenVINO at the CPU plugin's own precision (bf16 where the CPU has
AMX or avx512_bf16: lshrs' default), and OpenVINO forced to f32 (what a CPU
without bf16 gets). Speed: `--passages` passages per variant, batch 64, the
variants interleaved for `--rounds` rounds so machine noise hits them alike;
the median round counts. Quality, for each variant against PyTorch float32's
own embeddings of every passage: the mean cosine between the two embeddings
of a passage; the overlap of the exact top-10 neighbours of `--queries`
passages; and the recall@10 of an lshrs index built on the variant's vectors
(centroid family, MemoryStore, real Redis) against float32's exact
neighbours. Writes benchmarks/results/embedding.json and embedding.md.
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

import numpy as np
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

import realdata  # noqa: E402
from servers import RedisServer  # noqa: E402

from lshrs import LSHRS, MemoryStore  # noqa: E402
from lshrs.embeddings import DEFAULT_MODEL, SentenceTransformerEmbedder, resolve_model_path  # noqa: E402
from lshrs.openvino_encoder import OpenVINOEncoder  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
BATCH = 64


def variants() -> dict:
    """name -> texts -> vectors; the first is the reference."""
    torch_fp32 = SentenceTransformerEmbedder(DEFAULT_MODEL, batch_size=BATCH, device="cpu", backend="torch")
    st = torch_fp32.model
    path = resolve_model_path(DEFAULT_MODEL)
    native = OpenVINOEncoder(st, path, batch_size=BATCH)
    f32 = OpenVINOEncoder(st, path, batch_size=BATCH, inference_precision="f32")
    return {
        "torch fp32": torch_fp32,
        f"openvino {native.precision} (default)": native,
        f"openvino {f32.precision}": f32,
    }


def speed(embedders: dict, texts: list[str], rounds: int) -> dict[str, float]:
    """Median passages/s of each embedder over interleaved rounds."""
    for embed in embedders.values():
        embed(texts[:BATCH])  # warm: first-call allocations and compilation
    seconds: dict[str, list[float]] = {name: [] for name in embedders}
    for _ in range(rounds):
        for name, embed in embedders.items():
            t0 = time.perf_counter()
            embed(texts)
            seconds[name].append(time.perf_counter() - t0)
    return {name: len(texts) / statistics.median(s) for name, s in seconds.items()}


def top10(queries: np.ndarray, corpus: np.ndarray, rows: np.ndarray) -> np.ndarray:
    scores = queries @ corpus.T
    scores[np.arange(len(rows)), rows] = -np.inf  # a passage is not its own neighbour
    return np.argsort(-scores, axis=1)[:, :10]


def overlap(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a.tolist()) & set(b.tolist())) / 10 for a, b in zip(found, truth)]))


def index_recall(url: str, name: str, vectors: np.ndarray, rows: np.ndarray, truth: np.ndarray) -> float:
    """recall@10 of an lshrs index over `vectors`, queried with the same variant's vectors of the query passages."""
    store = MemoryStore()
    store.put(np.arange(len(vectors)), vectors, [""] * len(vectors))
    lsh = LSHRS(name=name, redis=redis.Redis.from_url(url), store=store, family="centroids", exact_below=0)
    try:
        lsh.index()
        found = []
        for row in rows:
            hits = [h.id for h in lsh.query(vectors[row], top_k=11) if h.id != row][:10]
            found.append(np.array(hits))
        return overlap(np.array(found, dtype=object), truth)
    finally:
        lsh.clear()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--passages", type=int, default=1000, help="passages per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--queries", type=int, default=200, help="query passages for the quality figures")
    args = parser.parse_args()

    texts = list(realdata.wiki_slice_texts())
    embedders = variants()
    rate = speed(embedders, texts[: args.passages], args.rounds)
    everything = {name: embed(texts) for name, embed in embedders.items()}
    reference_name = next(iter(embedders))
    reference = everything[reference_name]
    rows = np.random.default_rng(0).choice(len(texts), args.queries, replace=False)
    truth = top10(reference[rows], reference, rows)
    server = RedisServer()
    try:
        table = []
        for name, vectors in everything.items():
            table.append(
                {
                    "variant": name,
                    "passages_per_s": rate[name],
                    "x_torch": rate[name] / rate[reference_name],
                    "mean_cosine_to_fp32": float(np.mean(np.sum(vectors * reference, axis=1))),
                    "exact_top10_overlap": overlap(top10(vectors[rows], vectors, rows), truth),
                    "index_recall_at_10": index_recall(server.url, "emb-" + str(len(table)), vectors, rows, truth),
                }
            )
            print(json.dumps(table[-1]), flush=True)
    finally:
        server.stop()
    result = {
        "corpus": f"wiki-slice, {len(texts):,} passages",
        "timed_passages": args.passages,
        "rounds": args.rounds,
        "batch": BATCH,
        "queries": args.queries,
        "cpu": _cpu(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "rows": table,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "embedding.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "embedding.md").write_text(markdown(result))
    print(markdown(result))


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                flags = Path("/proc/cpuinfo").read_text()
                extra = [f for f in ("amx_bf16", "avx512_bf16") if f in flags]
                return line.split(":", 1)[1].strip() + (f" ({', '.join(extra)})" if extra else "")
    except OSError:
        pass
    return platform.processor()


def markdown(result: dict) -> str:
    lines = [
        "# Embedding backends on the CPU",
        "",
        f"{result['corpus']}; {result['timed_passages']:,} passages timed per variant, batch {result['batch']}, "
        f"median of {result['rounds']} interleaved rounds; quality over {result['queries']} query passages "
        f"against PyTorch float32's own exact top-10. CPU: {result['cpu']}, {result['cores']} cores.",
        "Reproduce: `.venv/bin/python benchmarks/embedding.py`.",
        "",
        "| variant | passages/s | × torch | mean cosine to fp32 | exact top-10 overlap | index recall@10 |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['variant']} | {r['passages_per_s']:.1f} | {r['x_torch']:.2f} | {r['mean_cosine_to_fp32']:.6f} "
            f"| {r['exact_top10_overlap']:.3f} | {r['index_recall_at_10']:.3f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
