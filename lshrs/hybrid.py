"""Hybrid search: the vector search and the store's keyword search, fused by rank.

A query with ``alpha`` < 1 runs both: the vector search as any query does
(filters included), and the store's `keyword_search` (SQLite FTS5,
Postgres full-text search, or the in-process BM25 of keywords.py). Their
best `FUSE_DEPTH` results are merged by weighted reciprocal rank fusion
(`keywords.fuse`): alpha = 1 is the vector search alone, alpha = 0 the
keyword search alone, as in LlamaIndex's and Weaviate's hybrid modes.
Keyword search finds what an embedding blurs: a name, a date, a code.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from lshrs import keywords
from lshrs.attachment import Attachment
from lshrs.search import Hit, Request, query_steps
from lshrs.steps import Steps, call

# Results each side hands to the fusion (at least top_k): a document ranked 50th by one
# side and absent from the other scores 1/110, below anything both sides rank well.
FUSE_DEPTH = 50
# Keyword hits read per result wanted when a filter must be applied to them in Python.
FILTERED_READ = 10


def check_alpha(alpha: Any) -> float:
    """alpha as a float in [0, 1]; anything else is refused before any I/O."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha):
        raise TypeError(f"alpha: expected a number in [0, 1], got {alpha!r}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha: expected a number in [0, 1] (1 = vector search only, 0 = keywords only), got {alpha}")
    return float(alpha)


def keyword_texts(req: Request, store: Any, keywords: Sequence[str] | None) -> list[str]:
    """What each query's keyword search matches: its text, or `keywords` for vector queries; refused before any I/O.

    A hybrid query also needs a reranked search and a store that can search its texts.
    """
    if not req.rerank:
        raise ValueError("alpha: keyword search reads the store, so alpha < 1 needs rerank=True")
    if req.top_p is not None:
        raise ValueError("alpha: top_p applies to the vector search alone; leave it None with alpha < 1")
    if not callable(getattr(store, "keyword_search", None)):
        kind = type(store).__name__
        raise TypeError(f"alpha: {kind} has no keyword_search(text, limit), so it cannot do hybrid search")
    n = len(req.texts) if req.texts is not None else len(req.vectors if req.vectors is not None else ())
    source = keywords if keywords is not None else req.texts
    if source is None:
        raise ValueError("alpha: keyword search matches words: alpha < 1 needs text queries, or keywords= with vectors")
    texts = list(source)
    if isinstance(keywords, str) or len(texts) != n or not all(isinstance(t, str) for t in texts):
        raise ValueError(f"keywords: expected {n} text(s), one per query, got {keywords!r:.80}")
    return texts


def hybrid_steps(index: Attachment, req: Request, alpha: float, texts: list[str]) -> Steps[list[list[Hit]]]:
    """Each query's top_k by fused rank; `score` is the fusion score (keywords.fuse), not a cosine."""
    depth = max(req.top_k, FUSE_DEPTH)
    by_vector: list[list[Hit]] = [[] for _ in texts]
    if alpha > 0:
        by_vector = yield from query_steps(index, replace(req, top_k=depth))
    results = []
    for text, vector_hits in zip(texts, by_vector):
        keyword_hits = (yield from _keyword_hits(text, depth, req)) if alpha < 1 else []
        known = {hit.id: hit for hit in [*vector_hits, *keyword_hits]}
        fused = keywords.fuse([h.id for h in vector_hits], [h.id for h in keyword_hits], alpha)[: req.top_k]
        results.append([_fused_hit(known[doc_id], score, req.payload) for doc_id, score in fused])
    return results


def _fused_hit(hit: Hit, score: float, payload: bool) -> Hit:
    """The hit with its fusion score; without its text and metadata when the query asked for none."""
    return replace(hit, score=score) if payload else replace(hit, score=score, text=None, metadata=None)


def _keyword_hits(text: str, depth: int, req: Request) -> Steps[list[Hit]]:
    """The store's best `depth` keyword matches for `text` that pass the query's filter, with payloads."""
    limit = depth if req.predicate is None else depth * FILTERED_READ
    ids, _ = yield call("store", "keyword_search", text, limit)
    ids = np.asarray(ids, np.int64)
    if len(ids) == 0:
        return []
    rows = yield call("store", "get", ids, payload=True)
    texts, metadata = rows.texts or [None] * len(rows), rows.metadata or [None] * len(rows)
    hits = [Hit(i, 0.0, t, m) for i, t, m in zip(rows.ids.tolist(), texts, metadata)]
    if req.predicate is not None:
        hits = [hit for hit in hits if req.predicate(hit.metadata)]
    return hits[:depth]
