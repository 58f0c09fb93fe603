"""Keyword search: an in-process BM25 for stores without a text index, and rank fusion with the vector search.

SQLite (FTS5) and Postgres (full-text search) answer keyword queries in
their own SQL; the memory and Redis stores keep no text index, so they
build a `BM25` over their texts in the process, lazily, and rebuild it
when their contents change. Vector and keyword results meet in `fuse`:
reciprocal rank fusion, which needs no common scale between a cosine and
a BM25 score (one is bounded, the other grows with the query's length).
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Hashable, Iterable, Sequence

import numpy as np
from numpy.typing import NDArray

# BM25's usual constants: term-frequency saturation and length normalisation.
K1 = 1.2
B = 0.75
# Reciprocal rank fusion's damping: a result at rank r adds 1 / (RRF_K + r). 60 is the
# constant of the original RRF paper and of most engines' hybrid modes; it keeps the
# first few ranks of either list from drowning out agreement further down.
RRF_K = 60

_WORD = re.compile(r"\w+", re.UNICODE)
# English function words, left out of every keyword index and query: in encyclopedic text
# "me" or "you" are rare enough to outweigh the rare name a question asks about
# ("Tell me about Dreros." ranked three passages holding "me" first; benchmarks/hybrid.py).
STOP_WORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have having
    he her here hers herself him himself his how i if in into is it its itself just me more most my myself no
    nor not now of off on once only or other our ours ourselves out over own same she should so some such than
    that the their theirs them themselves then there these they this those through to too under until up very
    was we were what when where which while who whom why will with would you your yours yourself yourselves""".split()
)


def terms(text: str | None) -> list[str]:
    """Lower-cased word tokens, stop words left out: what the in-process index and the SQL queries match on."""
    return [w for w in _WORD.findall(text.lower()) if w not in STOP_WORDS] if text else []


class BM25:
    """An inverted index of texts, scored by Okapi BM25.

    Built whole from (id, text) pairs: the stores that use it rebuild it
    when their contents change, which suits their use (a corpus written
    in batches and queried many times) and keeps it free of update logic.
    """

    def __init__(self, docs: Iterable[tuple[int, str | None]]) -> None:
        postings: dict[str, dict[int, int]] = {}
        lengths: dict[int, int] = {}
        for doc_id, text in docs:
            words = terms(text)
            lengths[doc_id] = len(words)
            for word in words:
                counts = postings.setdefault(word, {})
                counts[doc_id] = counts.get(doc_id, 0) + 1
        self._ids = np.array(sorted(lengths), np.int64)
        self._lengths = np.array([lengths[i] for i in self._ids.tolist()], np.float64)
        self._average = float(self._lengths.mean()) if len(self._lengths) else 0.0
        self._postings = {
            word: (np.searchsorted(self._ids, np.fromiter(c, np.int64, len(c))), np.fromiter(c.values(), np.float64))
            for word, c in postings.items()
        }

    def __len__(self) -> int:
        return len(self._ids)

    def search(self, text: str, limit: int) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """Ids of the `limit` best-scoring documents for `text`, best first, and their scores."""
        scores = np.zeros(len(self._ids))
        n = len(self._ids)
        for word in set(terms(text)):
            if word not in self._postings:
                continue
            rows, tf = self._postings[word]
            idf = math.log(1 + (n - len(rows) + 0.5) / (len(rows) + 0.5))
            norm = K1 * (1 - B + B * self._lengths[rows] / max(self._average, 1e-9))
            scores[rows] += idf * tf * (K1 + 1) / (tf + norm)
        matched = np.flatnonzero(scores > 0)
        if len(matched) > limit:
            matched = matched[np.argpartition(-scores[matched], limit - 1)[:limit]]
        order = np.lexsort((self._ids[matched], -scores[matched]))  # ties by id, so results are reproducible
        return self._ids[matched[order]], scores[matched[order]]


class StaleAware:
    """A store's BM25, rebuilt the first time it is searched after the store's version moved.

    The version is whatever the store bumps on every write (a counter in
    memory, a Redis key shared by every process), read before the texts,
    so a write during a rebuild only makes the next search rebuild again.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version: Hashable = None
        self._index: BM25 | None = None

    def search(
        self, version: Hashable, docs: Callable[[], Iterable[tuple[int, str | None]]], text: str, limit: int
    ) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        with self._lock:
            if self._index is None or version != self._version:
                self._index, self._version = BM25(docs()), version
            index = self._index
        return index.search(text, limit)


def fuse(
    vector_ids: Sequence[int], keyword_ids: Sequence[int], alpha: float, *, k: int = RRF_K
) -> list[tuple[int, float]]:
    """Weighted reciprocal rank fusion of two ranked id lists, best first.

    score(d) = alpha / (k + rank in the vector list) + (1 - alpha) / (k + rank
    in the keyword list), ranks from 1, a list d is missing from adding 0.
    alpha = 1 keeps the vector order, alpha = 0 the keyword order. Ties go
    to the id ranked higher by vector search, then by keyword search.
    """
    scores: dict[int, float] = {}
    for weight, ranked in ((alpha, vector_ids), (1.0 - alpha, keyword_ids)):
        if weight <= 0:
            continue
        for rank, doc_id in enumerate(ranked, start=1):
            scores[doc_id] = scores.get(doc_id, 0.0) + weight / (k + rank)
    first_seen: dict[int, int] = {}
    for i, doc_id in enumerate([*vector_ids, *keyword_ids]):
        first_seen.setdefault(doc_id, i)
    order = sorted(scores, key=lambda d: (-scores[d], first_seen[d]))
    return [(doc_id, scores[doc_id]) for doc_id in order]
