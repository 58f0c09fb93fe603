"""`LSHRSVectorStore`: LangChain's `VectorStore` over an lshrs index.

A thin adapter: string ids become integer keys (`lshrs.string_ids`), the string
itself rides in the row's metadata, and every storage decision stays in
`LSHRS`. Scores are cosine similarities in [-1, 1], and so are relevance
scores: langchain-core's own cosine relevance (1 - cosine distance), as
PGVector, Chroma and langchain-redis report it, so a `score_threshold`
carried over from them means the same here. `filter=` takes lshrs's filter
language (Mongo-style operators, `lshrs.where`) or a callable.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore
from langchain_core.vectorstores.utils import maximal_marginal_relevance
from numpy.typing import NDArray

from lshrs import LSHRS, Hit, Rows, string_ids
from lshrs.filters import Filter

DEFAULT_NAME = "langchain"
# lshrs query options that may ride along as search kwargs
_QUERY_OPTIONS = ("top_p", "num_probes", "alpha", "keywords")


class LSHRSVectorStore(VectorStore):
    """A LangChain vector store whose buckets live in Redis and documents in SQLite or Postgres.

    Args:
        embedding: any LangChain `Embeddings`; default all-MiniLM-L6-v2 via
            sentence-transformers (`SentenceTransformerEmbeddings`).
        lsh: an existing `LSHRS` index created with ``id_bytes=8``.
        **lshrs_options: otherwise, arguments for a new `LSHRS` (``name``,
            ``redis`` / ``redis_url``, ``store``, ``data_dir``, ...).
    """

    def __init__(self, embedding: Embeddings | None = None, *, lsh: LSHRS | None = None, **lshrs_options: Any):
        if lsh is not None and lshrs_options:
            raise TypeError("give lsh= or LSHRS options, not both")
        if lsh is None:
            lshrs_options.setdefault("name", DEFAULT_NAME)
            lsh = LSHRS(id_bytes=string_ids.ID_BYTES, **lshrs_options)
        if lsh.id_bytes != string_ids.ID_BYTES:
            raise ValueError(f"lsh: string ids need an index with id_bytes={string_ids.ID_BYTES}, got {lsh.id_bytes}")
        if embedding is None:
            from langchain_lshrs.embeddings import SentenceTransformerEmbeddings

            embedding = SentenceTransformerEmbeddings()
        self.lsh = lsh
        self._embedding = embedding

    @property
    def embeddings(self) -> Embeddings:
        return self._embedding

    # -- writes ------------------------------------------------------------

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict] | None = None,
        *,
        ids: Sequence[str | None] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Embed and store texts; an id already present is replaced. Returns the ids (generated where None)."""
        batch = _Batch.of(texts, metadatas, ids)
        if batch.texts:
            vectors = self._embedding.embed_documents(batch.texts)
            string_ids.check_free(self.lsh, batch.keys, batch.ids)
            self.lsh.ingest(texts=batch.texts, vectors=vectors, ids=batch.keys, metadata=batch.metadata)
        return batch.ids

    async def aadd_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict] | None = None,
        *,
        ids: Sequence[str | None] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        batch = _Batch.of(texts, metadatas, ids)
        if batch.texts:
            vectors = await self._embedding.aembed_documents(batch.texts)
            string_ids.check_stored(await self.lsh.aget(batch.keys), batch.keys, batch.ids)
            await self.lsh.aingest(texts=batch.texts, vectors=vectors, ids=batch.keys, metadata=batch.metadata)
        return batch.ids

    def add_documents(
        self, documents: list[Document], ids: Sequence[str | None] | None = None, **kwargs: Any
    ) -> list[str]:
        """Store documents under `ids`, else their own `.id`, else new ids (the documents are not modified)."""
        if ids is None:
            ids = [doc.id for doc in documents]
        return self.add_texts(
            [doc.page_content for doc in documents], [doc.metadata for doc in documents], ids=ids, **kwargs
        )

    async def aadd_documents(
        self, documents: list[Document], ids: Sequence[str | None] | None = None, **kwargs: Any
    ) -> list[str]:
        if ids is None:
            ids = [doc.id for doc in documents]
        texts, metas = [doc.page_content for doc in documents], [doc.metadata for doc in documents]
        return await self.aadd_texts(texts, metas, ids=ids, **kwargs)

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool:
        """Delete documents by id; unknown ids are ignored.

        ``ids=None`` raises instead of emptying the store: the store may be a
        table the application shares. Use ``store.lsh.clear()`` for the index.
        """
        wanted = _wanted(ids, "delete")
        present = _present(wanted, self.lsh.get(string_ids.keys_for(wanted)) if wanted else None)
        if present:
            self.lsh.delete(list(present.values()))
        return True

    async def adelete(self, ids: list[str] | None = None, **kwargs: Any) -> bool:
        wanted = _wanted(ids, "delete")
        present = _present(wanted, await self.lsh.aget(string_ids.keys_for(wanted)) if wanted else None)
        if present:
            await self.lsh.adelete(list(present.values()))
        return True

    # -- reads -------------------------------------------------------------

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The stored documents among `ids`, in the order asked; unknown ids are left out."""
        wanted = _wanted(ids, "get_by_ids")
        return _owned_documents(wanted, self.lsh.get(string_ids.keys_for(wanted)) if wanted else None)

    async def aget_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        wanted = _wanted(ids, "get_by_ids")
        return _owned_documents(wanted, await self.lsh.aget(string_ids.keys_for(wanted)) if wanted else None)

    def similarity_search(self, query: str, k: int = 4, filter: Filter | None = None, **kwargs: Any) -> list[Document]:
        return [doc for doc, _ in self.similarity_search_with_score(query, k, filter=filter, **kwargs)]

    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: Filter | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Documents with their cosine similarity to the query (higher is closer), best first.

        ``alpha=`` (in [0, 1]) makes it a hybrid search: the vector search fused
        with the store's keyword search on the query's words (`LSHRS.query`);
        0 is keywords alone (no embedding), and the scores are fusion scores.
        """
        if kwargs.get("alpha") == 0:  # keywords alone: nothing to embed
            return [] if _nothing_asked(k) else _scored(self.lsh.query(query, top_k=k, **_options(filter, kwargs)))
        vector = self._embedding.embed_query(query)
        return self.similarity_search_with_score_by_vector(vector, k, filter=filter, **_keywords(query, kwargs))

    def similarity_search_by_vector(
        self, embedding: list[float], k: int = 4, filter: Filter | None = None, **kwargs: Any
    ) -> list[Document]:
        return [doc for doc, _ in self.similarity_search_with_score_by_vector(embedding, k, filter=filter, **kwargs)]

    def similarity_search_with_score_by_vector(
        self, embedding: list[float], k: int = 4, filter: Filter | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        if _nothing_asked(k):
            return []
        return _scored(self.lsh.query(np.asarray(embedding, np.float32), top_k=k, **_options(filter, kwargs)))

    async def asimilarity_search(
        self, query: str, k: int = 4, filter: Filter | None = None, **kwargs: Any
    ) -> list[Document]:
        return [doc for doc, _ in await self.asimilarity_search_with_score(query, k, filter=filter, **kwargs)]

    async def asimilarity_search_with_score(
        self, query: str, k: int = 4, filter: Filter | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        if kwargs.get("alpha") == 0:
            if _nothing_asked(k):
                return []
            return _scored(await self.lsh.aquery(query, top_k=k, **_options(filter, kwargs)))
        vector = await self._embedding.aembed_query(query)
        return await self.asimilarity_search_with_score_by_vector(vector, k, filter=filter, **_keywords(query, kwargs))

    async def asimilarity_search_by_vector(
        self, embedding: list[float], k: int = 4, filter: Filter | None = None, **kwargs: Any
    ) -> list[Document]:
        scored = await self.asimilarity_search_with_score_by_vector(embedding, k, filter=filter, **kwargs)
        return [doc for doc, _ in scored]

    async def asimilarity_search_with_score_by_vector(
        self, embedding: list[float], k: int = 4, filter: Filter | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        if _nothing_asked(k):
            return []
        return _scored(await self.lsh.aquery(np.asarray(embedding, np.float32), top_k=k, **_options(filter, kwargs)))

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        """langchain-core's cosine relevance: 1 - cosine distance, which is the cosine the query returns.

        Unrelated documents can score below 0 (LangChain then warns that
        relevance should lie in [0, 1], as it does for PGVector); a
        `score_threshold` keeps the meaning it has in those stores.
        """
        return lambda score: self._cosine_relevance_score_fn(1.0 - score)

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Filter | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        vector = self._embedding.embed_query(query)
        return self.max_marginal_relevance_search_by_vector(vector, k, fetch_k, lambda_mult, filter=filter, **kwargs)

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Filter | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """The `fetch_k` nearest documents, then `k` of them picked for relevance and diversity."""
        if _nothing_asked(k):
            return []
        query = np.asarray(embedding, dtype=np.float32)
        hits = self.lsh.query(query, top_k=max(fetch_k, k), **_options(filter, kwargs))
        vectors = self.lsh.get([hit.id for hit in hits], payload=False).vectors if hits else None
        return _diverse(query, hits, vectors, k, lambda_mult)

    async def amax_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Filter | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        vector = await self._embedding.aembed_query(query)
        return await self.amax_marginal_relevance_search_by_vector(
            vector, k, fetch_k, lambda_mult, filter=filter, **kwargs
        )

    async def amax_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Filter | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        if _nothing_asked(k):
            return []
        query = np.asarray(embedding, dtype=np.float32)
        hits = await self.lsh.aquery(query, top_k=max(fetch_k, k), **_options(filter, kwargs))
        vectors = (await self.lsh.aget([hit.id for hit in hits], payload=False)).vectors if hits else None
        return _diverse(query, hits, vectors, k, lambda_mult)

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> LSHRSVectorStore:
        """A store (built from `kwargs`, see the class) holding `texts`."""
        store = cls(embedding, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store


@dataclass(frozen=True)
class _Batch:
    """Texts checked and paired with their string ids, integer keys and stored metadata."""

    texts: list[str]
    ids: list[str]
    keys: NDArray[np.int64]
    metadata: list[dict[str, Any]]

    @classmethod
    def of(cls, texts: Iterable[str], metadatas: list[dict] | None, ids: Sequence[str | None] | None) -> _Batch:
        texts = list(texts)
        doc_ids = _fill_ids(ids, len(texts))
        if metadatas is not None and len(metadatas) != len(texts):
            raise ValueError(f"metadatas: expected {len(texts)} entries, got {len(metadatas)}")
        metadata = [string_ids.with_id(m, i) for m, i in zip(metadatas or [{}] * len(texts), doc_ids)]
        return cls(texts, doc_ids, string_ids.keys_for(doc_ids) if texts else np.empty(0, np.int64), metadata)


def _fill_ids(ids: Sequence[str | None] | None, n: int) -> list[str]:
    if ids is None:
        return [str(uuid.uuid4()) for _ in range(n)]
    if len(ids) != n:
        raise ValueError(f"ids: expected {n} entries, got {len(ids)}")
    bad = next((i for i in ids if i is not None and not isinstance(i, str)), None)
    if bad is not None:
        raise TypeError(f"ids: expected str or None, got {type(bad).__name__} {bad!r}")
    return [i if i is not None else str(uuid.uuid4()) for i in ids]


def _wanted(ids: Sequence[str] | None, verb: str) -> list[str]:
    """Distinct ids, in order; None is refused: lshrs never empties a (possibly shared) store implicitly."""
    if ids is None:
        raise ValueError(f"{verb}: give the ids (lshrs never acts on a whole store implicitly)")
    return list(dict.fromkeys(ids))


def _present(wanted: list[str], rows: Rows | None) -> dict[str, int]:
    """String id -> key for the ids stored under their own key (a key held by another id is left alone)."""
    if rows is None:
        return {}
    held = {key: string_ids.split_metadata(meta)[0] for key, meta in zip(rows.ids.tolist(), rows.metadata or [])}
    return {i: string_ids.key_for(i) for i in wanted if held.get(string_ids.key_for(i)) == i}


def _owned_documents(wanted: list[str], rows: Rows | None) -> list[Document]:
    if rows is None:
        return []
    owned = set(_present(wanted, rows).values())
    pairs = zip(rows.ids.tolist(), rows.texts or [], rows.metadata or [])
    return [_document(text, meta) for key, text, meta in pairs if key in owned]


def _diverse(query: NDArray[np.float32], hits: list[Hit], vectors: Any, k: int, lambda_mult: float) -> list[Document]:
    """MMR over the fetched hits and their stored vectors."""
    if not hits:
        return []
    chosen = maximal_marginal_relevance(query, vectors.tolist(), lambda_mult=lambda_mult, k=k)
    return [_document(hits[i].text, hits[i].metadata) for i in chosen]


def _document(text: str | None, meta: dict[str, Any] | None) -> Document:
    doc_id, user_meta = string_ids.split_metadata(meta)
    return Document(id=doc_id, page_content=text or "", metadata=user_meta)


def _scored(hits: list[Hit]) -> list[tuple[Document, float]]:
    return [(_document(hit.text, hit.metadata), hit.score) for hit in hits]


def _nothing_asked(k: Any) -> bool:
    """Whether `k` is 0, which LangChain's own stores answer with no documents; other bad values raise later."""
    return isinstance(k, int) and not isinstance(k, bool) and k == 0


def _user_filter(filter: Filter | None) -> Filter | None:
    """A callable filter sees the user's metadata, without the stored id."""
    if filter is None or not callable(filter):
        return filter
    return lambda meta: bool(filter(string_ids.split_metadata(meta)[1]))


def _keywords(query: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """A hybrid search (alpha given) matches the words of the query text beside its embedding."""
    return {**kwargs, "keywords": query} if kwargs.get("alpha") is not None else kwargs


def _options(filter: Filter | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    """lshrs query arguments: the filter, and the lshrs options among LangChain's search kwargs."""
    return {"filter": _user_filter(filter), **{k: kwargs[k] for k in _QUERY_OPTIONS if kwargs.get(k) is not None}}
