"""`LSHRSVectorStore`: LangChain's `VectorStore` over an lshrs index.

A thin adapter: string ids become integer keys (`lshrs.keys`), the string
itself rides in the row's metadata, and every storage decision stays in
`LSHRS`. Scores are cosine similarities in [-1, 1]; relevance scores map
them linearly onto [0, 1].
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore
from langchain_core.vectorstores.utils import maximal_marginal_relevance

from lshrs import LSHRS, keys
from lshrs.filters import Filter

DEFAULT_NAME = "langchain"
# lshrs query options that may ride along as search kwargs
_QUERY_OPTIONS = ("top_p", "num_probes")


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
            lsh = LSHRS(id_bytes=keys.ID_BYTES, **lshrs_options)
        if lsh.id_bytes != keys.ID_BYTES:
            raise ValueError(f"lsh: string ids need an index with id_bytes={keys.ID_BYTES}, got {lsh.id_bytes}")
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
        texts = list(texts)
        doc_ids = _fill_ids(ids, len(texts))
        if metadatas is not None and len(metadatas) != len(texts):
            raise ValueError(f"metadatas: expected {len(texts)} entries, got {len(metadatas)}")
        if not texts:
            return []
        metadata = [keys.with_id(m, i) for m, i in zip(metadatas or [{}] * len(texts), doc_ids)]
        key_array = keys.keys_for(doc_ids)
        vectors = np.asarray(self._embedding.embed_documents(texts), dtype=np.float32)
        keys.check_free(self.lsh, key_array, doc_ids)
        self.lsh.ingest(texts=texts, vectors=vectors, ids=key_array, metadata=metadata)
        return doc_ids

    def add_documents(self, documents: list[Document], ids: Sequence[str | None] | None = None, **kwargs: Any) -> list[str]:
        """Store documents under `ids`, else their own `.id`, else new ids (the documents are not modified)."""
        if ids is None:
            ids = [doc.id for doc in documents]
        return self.add_texts(
            [doc.page_content for doc in documents], [doc.metadata for doc in documents], ids=ids, **kwargs
        )

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool:
        """Delete documents by id; unknown ids are ignored.

        ``ids=None`` raises instead of emptying the store: the store may be a
        table the application shares. Use ``store.lsh.clear()`` for the index.
        """
        if ids is None:
            raise ValueError("delete: give the ids to delete (lshrs never empties a store implicitly)")
        present = self._present(ids)
        if present:
            self.lsh.delete(list(present.values()))
        return True

    # -- reads -------------------------------------------------------------

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The stored documents among `ids`, in the order asked; unknown ids are left out."""
        present = self._present(ids)
        if not present:
            return []
        rows = self.lsh.get(list(present.values()))
        return [_document(text, meta) for text, meta in zip(rows.texts or [], rows.metadata or [])]

    def _present(self, ids: Sequence[str]) -> dict[str, int]:
        """String id -> key for the ids stored under their own key (guards against a key collision)."""
        unique = list(dict.fromkeys(ids))
        if not unique:
            return {}
        rows = self.lsh.get(keys.keys_for(unique))
        held = {key: keys.split_metadata(meta)[0] for key, meta in zip(rows.ids.tolist(), rows.metadata or [])}
        return {i: keys.key_for(i) for i in unique if held.get(keys.key_for(i)) == i}

    def similarity_search(self, query: str, k: int = 4, filter: Filter | None = None, **kwargs: Any) -> list[Document]:
        return [doc for doc, _ in self.similarity_search_with_score(query, k, filter=filter, **kwargs)]

    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: Filter | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Documents with their cosine similarity to the query (higher is closer), best first."""
        vector = self._embedding.embed_query(query)
        return self.similarity_search_with_score_by_vector(vector, k, filter=filter, **kwargs)

    def similarity_search_by_vector(
        self, embedding: list[float], k: int = 4, filter: Filter | None = None, **kwargs: Any
    ) -> list[Document]:
        return [doc for doc, _ in self.similarity_search_with_score_by_vector(embedding, k, filter=filter, **kwargs)]

    def similarity_search_with_score_by_vector(
        self, embedding: list[float], k: int = 4, filter: Filter | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        hits = self.lsh.query(
            np.asarray(embedding, dtype=np.float32), top_k=k, filter=_user_filter(filter), **_options(kwargs)
        )
        return [(_document(hit.text, hit.metadata), hit.score) for hit in hits]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        """Cosine in [-1, 1] to relevance in [0, 1] (MiniLM and the test embeddings give negative cosines)."""
        return lambda score: min(1.0, max(0.0, (score + 1.0) / 2.0))

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
        query = np.asarray(embedding, dtype=np.float32)
        hits = self.lsh.query(query, top_k=max(fetch_k, k), filter=_user_filter(filter), **_options(kwargs))
        if not hits:
            return []
        vectors = self.lsh.get([hit.id for hit in hits], payload=False).vectors
        chosen = maximal_marginal_relevance(query, vectors.tolist(), lambda_mult=lambda_mult, k=k)
        return [_document(hits[i].text, hits[i].metadata) for i in chosen]

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


def _fill_ids(ids: Sequence[str | None] | None, n: int) -> list[str]:
    if ids is None:
        return [str(uuid.uuid4()) for _ in range(n)]
    if len(ids) != n:
        raise ValueError(f"ids: expected {n} entries, got {len(ids)}")
    bad = next((i for i in ids if i is not None and not isinstance(i, str)), None)
    if bad is not None:
        raise TypeError(f"ids: expected str or None, got {type(bad).__name__} {bad!r}")
    return [i if i is not None else str(uuid.uuid4()) for i in ids]


def _document(text: str | None, meta: dict[str, Any] | None) -> Document:
    doc_id, user_meta = keys.split_metadata(meta)
    return Document(id=doc_id, page_content=text or "", metadata=user_meta)


def _user_filter(filter: Filter | None) -> Filter | None:
    """A callable filter sees the user's metadata, without the stored id."""
    if filter is None or not callable(filter):
        return filter
    return lambda meta: bool(filter(keys.split_metadata(meta)[1]))


def _options(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: kwargs[k] for k in _QUERY_OPTIONS if kwargs.get(k) is not None}
