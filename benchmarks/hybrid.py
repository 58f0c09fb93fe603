"""Hybrid search against vector search alone, on the Wikipedia slice, for rare terms and for plain questions.

    .venv/bin/python benchmarks/hybrid.py [--store sqlite|memory|postgres] [--queries 200]

The 4,441 passages of gensim's Wikipedia slice (realdata.py's "wiki-slice",
embedded with all-MiniLM-L6-v2) go into a store and a centroid index at the
defaults. Two query sets:

- rare terms: words that occur in exactly one passage, five letters or
  more: names (capitalised in the text), numbers, and other words, asked as
  "Tell me about TERM." The answer is that passage; we report whether it is
  in the top 10 (hit@10) and its reciprocal rank (MRR@10).
- plain questions: held-out passages' own embeddings cannot be used (a
  keyword side needs text), so each query is the first sentence of a
  passage, and the truth is the exact top-10 of its embedding by cosine: how
  much of vector search's answer a hybrid query keeps (overlap@10).

Each set runs at alpha 1 (vector only), 0.7, 0.5, 0.3 and 0 (keywords only),
alternating per query, with p50 latency. Writes results/hybrid-STORE.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

import realdata  # noqa: E402
from servers import Postgres, RedisServer, debian_pg_bindir  # noqa: E402

from lshrs import LSHRS, MemoryStore, PostgresStore, SQLiteStore, __version__  # noqa: E402
from lshrs.keywords import terms  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
ALPHAS = (1.0, 0.7, 0.5, 0.3, 0.0)
TOP_K = 10


def rare_terms(texts: list[str], n: int, seed: int) -> list[tuple[str, str, int]]:
    """(kind, term, passage) for words in exactly one passage: a third names, a third numbers, a third others."""
    df = Counter(word for text in texts for word in set(terms(text)))
    kinds: dict[str, list[tuple[str, int]]] = {"name": [], "number": [], "word": []}
    for row, text in enumerate(texts):
        for raw in set(re.findall(r"\w+", text)):
            word = raw.lower()
            if df[word] != 1 or len(word) < 5 or "_" in word:
                continue
            kind = "number" if word.isdigit() else "name" if raw[0].isupper() and raw[1:].islower() else "word"
            if kind != "word" or word.isalpha():
                kinds[kind].append((raw, row))
    rng = np.random.default_rng(seed)
    picked = []
    for kind, found in kinds.items():
        found.sort()
        for i in rng.choice(len(found), min(n // 3, len(found)), replace=False):
            picked.append((kind, *found[int(i)]))
    return picked


def first_sentence(text: str) -> str:
    return re.split(r"(?<=[.!?])\s", text.strip(), maxsplit=1)[0][:300]


def open_store(kind: str, folder: str, pg: Postgres | None):
    if kind == "memory":
        return MemoryStore()
    if kind == "sqlite":
        return SQLiteStore(os.path.join(folder, "hybrid.sqlite3"))
    assert pg is not None
    return PostgresStore(pg.dsn, table="hybrid")


def run(lsh: LSHRS, queries: list[str], vectors: np.ndarray) -> dict[float, tuple[list[list[int]], list[float]]]:
    """Every query at every alpha, alternating alphas per query (so load drifts hit them alike)."""
    out: dict[float, tuple[list[list[int]], list[float]]] = {a: ([], []) for a in ALPHAS}
    for text, vector in zip(queries, vectors):
        for alpha in ALPHAS:
            t0 = time.perf_counter()
            hits = lsh.query(vector, top_k=TOP_K, alpha=alpha, keywords=text)
            out[alpha][1].append(time.perf_counter() - t0)
            out[alpha][0].append([h.id for h in hits])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", choices=("sqlite", "memory", "postgres"), default="sqlite")
    parser.add_argument("--queries", type=int, default=201)
    args = parser.parse_args()
    texts, vectors = realdata.load(["wiki-slice"])
    rare = rare_terms(texts, args.queries, seed=0)
    rng = np.random.default_rng(1)
    plain_rows = np.sort(rng.choice(len(texts), args.queries, replace=False))
    server, pg = RedisServer(), None
    folder = tempfile.mkdtemp()
    try:
        if args.store == "postgres":
            pg = Postgres(debian_pg_bindir())
            pg.start()
        store = open_store(args.store, folder, pg)
        lsh = LSHRS(name="hybrid", redis=redis.Redis.from_url(server.url), store=store,
                    embedding_model="sentence-transformers/all-MiniLM-L6-v2")  # fmt: skip
        store.put(np.arange(len(texts)), vectors, texts)
        lsh.index()
        lsh.query(texts[0][:50], alpha=0.5)  # the model loads and the keyword index is made: not timed
        rare_text = [f"Tell me about {term}." for _, term, _ in rare]
        plain_text = [first_sentence(texts[r]) for r in plain_rows]
        rare_vec, plain_vec = lsh.embed(rare_text), lsh.embed(plain_text)
        unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        truth = [set(np.argsort(-(unit @ (v / np.linalg.norm(v))))[:TOP_K].tolist()) for v in plain_vec]
        rare_runs, plain_runs = run(lsh, rare_text, rare_vec), run(lsh, plain_text, plain_vec)
    finally:
        server.stop()
        if pg is not None:
            pg.stop()
    rows = []
    for alpha in ALPHAS:
        found, times = rare_runs[alpha]
        ranks = [f.index(row) + 1 if row in f else None for f, (_, _, row) in zip(found, rare)]
        by_kind = {k: [r for r, (kind, _, _) in zip(ranks, rare) if kind == k] for k in ("name", "number", "word")}
        plain_found, plain_times = plain_runs[alpha]
        rows.append({
            "alpha": alpha,
            "rare_hit10": float(np.mean([r is not None for r in ranks])),
            "rare_mrr10": float(np.mean([1 / r if r else 0.0 for r in ranks])),
            **{f"rare_hit10_{k}": float(np.mean([r is not None for r in v])) for k, v in by_kind.items()},
            "rare_p50_ms": float(np.percentile(times, 50) * 1e3),
            "plain_overlap10": float(np.mean([len(set(f) & t) / TOP_K for f, t in zip(plain_found, truth)])),
            "plain_p50_ms": float(np.percentile(plain_times, 50) * 1e3),
        })  # fmt: skip
    result = {
        "store": args.store,
        "passages": len(texts),
        "rare_queries": {k: sum(1 for r in rare if r[0] == k) for k in ("name", "number", "word")},
        "plain_queries": len(plain_rows),
        "examples": [f"Tell me about {term}." for _, term, _ in rare[:: max(1, len(rare) // 6)]],
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "lshrs": __version__,
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    stem = f"hybrid-{args.store}"
    (RESULTS / f"{stem}.json").write_text(json.dumps(result, indent=2))
    (RESULTS / f"{stem}.md").write_text(markdown(result))
    print(markdown(result))


def markdown(result: dict) -> str:
    counts = result["rare_queries"]
    lines = [
        f"# Hybrid search on the Wikipedia slice ({result['store']} store)",
        "",
        f"{result['passages']:,} passages of gensim's Wikipedia slice, all-MiniLM-L6-v2, centroid index at the "
        f"defaults. Machine: {result['machine']}; lshrs {result['lshrs']}.",
        "",
        f"Rare terms: {sum(counts.values())} words found in exactly one passage ({counts['name']} names, "
        f'{counts["number"]} numbers, {counts["word"]} other words), asked as "Tell me about TERM."; '
        f"the answer is that passage. Examples: {', '.join(result['examples'])}",
        f"Plain questions: the first sentence of {result['plain_queries']} passages; truth is the exact "
        "cosine top-10 of the question's embedding (how much of the vector answer is kept).",
        "",
        "Reproduce: `.venv/bin/python benchmarks/hybrid.py --store " + result["store"] + "`",
        "",
        "| alpha | rare hit@10 | names | numbers | words | rare MRR@10 | rare p50 ms "
        "| plain overlap@10 | plain p50 ms |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['alpha']:.1f} | {r['rare_hit10']:.3f} | {r['rare_hit10_name']:.3f} | {r['rare_hit10_number']:.3f} "
            f"| {r['rare_hit10_word']:.3f} | {r['rare_mrr10']:.3f} | {r['rare_p50_ms']:.2f} "
            f"| {r['plain_overlap10']:.3f} | {r['plain_p50_ms']:.2f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
