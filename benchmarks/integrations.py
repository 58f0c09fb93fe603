"""What the LangChain and LlamaIndex adapters add to a query, measured side by side.

Run:  .venv/bin/python benchmarks/integrations.py [--articles 12] [--rounds 200]
Writes benchmarks/results/integrations.json and integrations.md. Starts its
own Redis on a free loopback port. Corpus: the passages of the first
`--articles` articles of the Wikipedia slice (the examples' corpus), in
SQLite, embedded with MiniLM. Each round times the same question through
every path in turn, so machine noise hits all paths alike:

- by vector: `LSHRS.query(vector)` / `similarity_search_by_vector` /
  LlamaIndex `LSHRSVectorStore.query(VectorStoreQuery)`
- from text (model included): `LSHRS.query(text)` / `similarity_search` /
  a `VectorStoreIndex` retriever's `retrieve`
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from servers import RedisServer  # noqa: E402

from lshrs import SQLiteStore  # noqa: E402
from lshrs.cli import demo_dump  # noqa: E402
from lshrs.passages import passages  # noqa: E402
from lshrs.wikipedia import read_articles  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
QUESTIONS = [
    "Why do snow and ice reflect so much sunlight?",
    "a political philosophy that rejects the state",
    "Which Greek philosopher taught Alexander the Great?",
    "the hero of the Trojan War",
    "the capital of Alabama",
    "how autism is diagnosed",
    "the sixteenth president of the United States",
    "the first letter of the alphabet",
]
K = 4


def corpus(articles: int) -> list:
    return [p for i, a in enumerate(read_articles(demo_dump())) if i < articles for p in passages([a])]


def build(redis_url: str, folder: Path, texts: list, vectors: np.ndarray, embed) -> dict[str, Callable]:
    """The three stacks over one index, and a callable per path (question index -> results)."""
    from langchain_core.embeddings import Embeddings
    from llama_index.core import VectorStoreIndex
    from llama_index.core.vector_stores.types import VectorStoreQuery

    from langchain_lshrs import LSHRSVectorStore
    from llama_index.vector_stores.lshrs import LSHRSVectorStore as LlamaStore
    from llama_index.vector_stores.lshrs import SentenceTransformerEmbedding

    class Shared(Embeddings):  # one loaded model for every stack
        def embed_documents(self, items):
            return embed(items).tolist()

        def embed_query(self, text):
            return embed([text])[0].tolist()

    lc = LSHRSVectorStore(Shared(), name="bench", redis_url=redis_url, store=SQLiteStore(folder / "d.sqlite3"))
    lc.add_texts([p.text for p in texts], [{"title": p.title} for p in texts], ids=[str(p.id) for p in texts])
    lsh = lc.lsh
    # LlamaIndex stores whole nodes (its own metadata format), so it gets its own table of the same passages.
    llama_store = LlamaStore(name="bench-llama", redis_url=redis_url, store=SQLiteStore(folder / "l.sqlite3"))
    model = SentenceTransformerEmbedding()
    index = VectorStoreIndex.from_vector_store(llama_store, embed_model=model)
    from llama_index.core.schema import TextNode

    nodes = [TextNode(id_=str(p.id), text=p.text, metadata={"title": p.title}, embedding=v.tolist())
             for p, v in zip(texts, vectors)]  # fmt: skip
    llama_store.add(nodes)
    retriever = index.as_retriever(similarity_top_k=K)
    qvecs = embed(QUESTIONS)
    return {
        "vector: LSHRS.query": lambda i: lsh.query(qvecs[i], top_k=K),
        "vector: LangChain similarity_search_by_vector": lambda i: lc.similarity_search_by_vector(qvecs[i], k=K),
        "vector: LlamaIndex store.query": lambda i: llama_store.query(
            VectorStoreQuery(query_embedding=qvecs[i].tolist(), similarity_top_k=K)
        ),
        "text: LSHRS.query": lambda i: lsh.query(QUESTIONS[i], top_k=K),
        "text: LangChain similarity_search": lambda i: lc.similarity_search(QUESTIONS[i], k=K),
        "text: LlamaIndex retriever.retrieve": lambda i: retriever.retrieve(QUESTIONS[i]),
    }


def measure(paths: dict[str, Callable], rounds: int) -> dict[str, dict]:
    times: dict[str, list[float]] = {name: [] for name in paths}
    for run in paths.values():  # warm-up
        run(0)
    for r in range(rounds):
        for name, run in paths.items():
            started = time.perf_counter()
            run(r % len(QUESTIONS))
            times[name].append(time.perf_counter() - started)
    return {
        name: {"p50_ms": 1e3 * float(np.median(t)), "p95_ms": 1e3 * float(np.percentile(t, 95))}
        for name, t in times.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from lshrs.embeddings import make_embedder

    embed = make_embedder(None, 64)
    texts = corpus(args.articles)
    vectors = embed([p.text for p in texts])
    server = RedisServer()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            figures = measure(build(server.url, Path(tmp), texts, vectors, embed), args.rounds)
    finally:
        server.stop()
    report = {"passages": len(texts), "k": K, "rounds": args.rounds, "paths": figures}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "integrations.json").write_text(json.dumps(report, indent=2))
    (RESULTS / "integrations.md").write_text(markdown(report))
    print(markdown(report))


def markdown(r: dict) -> str:
    lines = [
        "# Integration overhead",
        "",
        f"`.venv/bin/python benchmarks/integrations.py`: {r['passages']} passages in SQLite, k = {r['k']}, "
        f"{r['rounds']} rounds, paths interleaved within each round.",
        "",
        "| path | p50 ms | p95 ms | p50 / LSHRS.query |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, f in r["paths"].items():
        base = r["paths"][name.split(":")[0] + ": LSHRS.query"]["p50_ms"]
        lines.append(f"| {name} | {f['p50_ms']:.2f} | {f['p95_ms']:.2f} | {f['p50_ms'] / base:.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
