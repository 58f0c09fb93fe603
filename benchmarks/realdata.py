"""Real MiniLM embeddings of real text, cached on disk so reruns take minutes.

    .venv/bin/python benchmarks/realdata.py [--limit N]   # embed (resumes) and print sizes

Corpus: passages of the Wikipedia slice in gensim's wheel (4,441), then the
117,659 synsets of Princeton WordNet 3.0 from Debian's `wordnet-base` package
("lemma, lemma: gloss; examples"), which `benchmarks/setup.sh` unpacks under
benchmarks/cache/ (or install it: `apt-get install wordnet-base`). Embeddings are written in chunks under
benchmarks/cache/ (ignored by git), so an interrupted run resumes.
Queries are held-out passages (not in the indexed set) and exact top-100
neighbours come from numpy.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from lshrs.embeddings import make_embedder  # noqa: E402
from lshrs.passages import passages  # noqa: E402
from lshrs.wikipedia import read_articles  # noqa: E402

CACHE = ROOT / "benchmarks" / "cache"
_CHUNK = 2_048


def gensim_slice() -> Path:
    import gensim

    return (
        Path(gensim.__file__).parent
        / "test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
    )


def wiki_slice_texts() -> Iterator[str]:
    for passage in passages(read_articles(gensim_slice())):
        yield passage.embedding_text


WORDNET_DIRS = [CACHE / "wordnet-base" / "usr/share/wordnet", Path("/usr/share/wordnet")]


def wordnet_texts() -> Iterator[str]:
    """Every WordNet synset as "lemma, lemma: gloss", nouns, verbs, adjectives then adverbs."""
    folder = next((d for d in WORDNET_DIRS if (d / "data.noun").exists()), None)
    if folder is None:
        raise SystemExit("WordNet not found: run `bash benchmarks/setup.sh` (or apt-get install wordnet-base)")
    for pos in ("noun", "verb", "adj", "adv"):
        with open(folder / f"data.{pos}", encoding="latin-1") as lines:
            for line in lines:
                if not line.startswith("  "):  # the licence header is indented
                    yield _synset_text(line)


def _synset_text(line: str) -> str:
    head, _, gloss = line.partition(" | ")
    fields = head.split()
    count = int(fields[3], 16)
    lemmas = (fields[4 + 2 * i].replace("_", " ").split("(")[0] for i in range(count))
    return ", ".join(dict.fromkeys(lemmas)) + ": " + gloss.strip()


SOURCES: dict[str, Callable[[], Iterator[str]]] = {"wiki-slice": wiki_slice_texts, "wordnet": wordnet_texts}


def embed_source(name: str, limit: int | None = None) -> tuple[list[str], np.ndarray]:
    """Texts and float32 MiniLM vectors of one source, computed once then read from the cache."""
    texts = list(SOURCES[name]())[:limit]
    folder = CACHE / name
    folder.mkdir(parents=True, exist_ok=True)
    embed = None
    parts = []
    started = time.perf_counter()
    for lo in range(0, len(texts), _CHUNK):
        chunk = texts[lo : lo + _CHUNK]
        digest = hashlib.sha1("\x00".join(chunk).encode()).hexdigest()[:16]
        path = folder / f"{lo:09d}-{digest}.npy"
        if not path.exists():
            embed = embed or make_embedder(None, 64)
            np.save(path, embed(chunk))
            done = lo + len(chunk)
            rate = done / (time.perf_counter() - started)
            print(f"{name}: {done:,}/{len(texts):,} embedded ({rate:.0f}/s)", flush=True)
        parts.append(np.load(path))
    return texts, np.concatenate(parts) if parts else np.empty((0, 384), np.float32)


def load(names: list[str] | None = None, limit: int | None = None) -> tuple[list[str], np.ndarray]:
    texts: list[str] = []
    vectors = []
    for name in names or list(SOURCES):
        t, v = embed_source(name, limit)
        texts += t
        vectors.append(v)
    return texts, np.concatenate(vectors)


def source_sizes() -> dict[str, int]:
    """Documents per source, as cached (for reports)."""
    return {name: len(list(SOURCES[name]())) for name in SOURCES}


def split_rows(n: int, n_queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Row numbers of `n_queries` held-out queries and of the remaining corpus (both sorted)."""
    rng = np.random.default_rng(seed)
    held = np.sort(rng.choice(n, n_queries, replace=False))
    return held, np.setdiff1d(np.arange(n), held)


def split_queries(vectors: np.ndarray, n_queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hold out `n_queries` rows as queries; returns (corpus rows, query rows, exact top-100 of each query)."""
    held, keep = split_rows(len(vectors), n_queries, seed)
    corpus, queries = vectors[keep], vectors[held]
    truth = exact_neighbours(queries, corpus, 100)
    return corpus, queries, truth


def exact_neighbours(queries: np.ndarray, corpus: np.ndarray, k: int) -> np.ndarray:
    cn = corpus / np.linalg.norm(corpus, axis=1, keepdims=True)
    qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    out = []
    for lo in range(0, len(qn), 256):
        scores = qn[lo : lo + 256] @ cn.T
        best = np.argpartition(-scores, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, best, axis=1), axis=1)
        out.append(np.take_along_axis(best, order, axis=1))
    return np.concatenate(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("sources", nargs="*", default=None)
    args = parser.parse_args()
    texts, vectors = load(args.sources or None, args.limit)
    print(f"{len(texts):,} texts, vectors {vectors.shape}")


if __name__ == "__main__":
    main()
