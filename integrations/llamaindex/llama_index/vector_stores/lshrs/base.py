"""`LSHRSVectorStore`: LlamaIndex nodes as lshrs documents.

A node becomes one row: its string id maps to an int64 key
(`lshrs.string_ids.key_for`), its text (without metadata) is the row text, and the
rest of the node (metadata, relationships, ...) is the row metadata in
LlamaIndex's own `node_to_metadata_dict` form, which also puts `ref_doc_id` at
the top level where `LSHRS.find` can test it in SQL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.schema import BaseNode, MetadataMode, TextNode
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)
from llama_index.core.vector_stores.utils import (
    legacy_metadata_dict_to_node,
    metadata_dict_to_node,
    node_to_metadata_dict,
)
from numpy.typing import NDArray

from llama_index.vector_stores.lshrs.filters import Filter, to_filter
from lshrs import LSHRS, Hit, Rows
from lshrs.filters import as_predicate, matching
from lshrs.inputs import check_top
from lshrs.ranking import exact_top_k
from lshrs.string_ids import ID_BYTES, ID_FIELD, check_stored, keys_for, split_metadata, with_id

# The rows this store wrote: every node's row carries its string id (lshrs.string_ids).
_NODES = {ID_FIELD: {"$exists": True}}
# Keyword arguments of query() passed through to LSHRS.query (VectorStoreIndex's vector_store_kwargs).
_QUERY_OPTIONS = ("top_p", "num_probes")
# Query modes answered: by vector, by keywords (the store's own text search), or both fused.
_KEYWORD_MODES = (VectorStoreQueryMode.HYBRID, VectorStoreQueryMode.TEXT_SEARCH)
_MODES = (VectorStoreQueryMode.DEFAULT, *_KEYWORD_MODES)


class LSHRSVectorStore(BasePydanticVectorStore):
    """A LlamaIndex vector store on an lshrs index: LSH buckets in Redis, nodes in SQLite or Postgres.

    Pass an `LSHRS` built with ``id_bytes=8``, or the `LSHRS` keyword
    arguments (``name``, ``redis_url``/``redis``, ``store``, ``data_dir``, ...)
    and one is built for you. With neither ``redis_url`` nor ``REDIS_URL`` it
    runs on the embedded default (a local Redis and SQLite under
    ``./lshrs_data``).

    Nodes must carry embeddings; `VectorStoreIndex` computes them with
    whatever ``embed_model`` it is given (any `BaseEmbedding`, for example
    this package's `SentenceTransformerEmbedding`).

    Args:
        lsh: an existing index; its keys must be 8 bytes wide.
        flat_metadata: refuse node metadata that is not flat (str, int,
            float or None values), as some other stores require.
        **lshrs_kwargs: arguments of `LSHRS` when `lsh` is not given.
    """

    stores_text: bool = True
    flat_metadata: bool = False

    _lsh: LSHRS = PrivateAttr()

    def __init__(self, *, lsh: LSHRS | None = None, flat_metadata: bool = False, **lshrs_kwargs: Any) -> None:
        if lsh is None:
            lsh = LSHRS(**{"id_bytes": ID_BYTES, **lshrs_kwargs})
        elif lshrs_kwargs:
            raise TypeError(f"give lsh or LSHRS arguments, not both: got lsh and {sorted(lshrs_kwargs)}")
        _check_id_width(lsh)
        # mypy types the base's __init__ with the base's fields only (pydantic's dataclass_transform)
        super().__init__(flat_metadata=flat_metadata)  # type: ignore[call-arg]
        self._lsh = lsh

    @classmethod
    def class_name(cls) -> str:
        return "LSHRSVectorStore"

    @property
    def client(self) -> LSHRS:
        """The underlying `LSHRS` index."""
        return self._lsh

    # -- writes ------------------------------------------------------------

    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> list[str]:
        """Write nodes (replacing any with the same id); the whole batch is checked before the first write.

        Returns:
            The node ids, in input order.
        """
        if not nodes:
            return []
        batch = _Batch.of(nodes, self.flat_metadata)
        check_stored(self._lsh.get(batch.keys), batch.keys, batch.ids)
        self._lsh.ingest(batch.texts, batch.vectors, ids=batch.keys, metadata=batch.metadata)
        return batch.ids

    async def async_add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> list[str]:
        if not nodes:
            return []
        batch = _Batch.of(nodes, self.flat_metadata)
        check_stored(await self._lsh.aget(batch.keys), batch.keys, batch.ids)
        await self._lsh.aingest(batch.texts, batch.vectors, ids=batch.keys, metadata=batch.metadata)
        return batch.ids

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node of one source document (an equality the SQL stores answer themselves)."""
        self._delete_keys(self._lsh.find({"ref_doc_id": ref_doc_id}))

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        await self._adelete_keys(await self._lsh.afind({"ref_doc_id": ref_doc_id}))

    def delete_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
        **delete_kwargs: Any,
    ) -> None:
        """Delete the given nodes, or those passing `filters`, or the given nodes that pass them.

        Unlike a query, an empty `node_ids` list selects nothing, and giving
        neither argument is refused: `clear()` is the way to delete everything.
        """
        _check_selection(node_ids, filters)
        self._delete_keys(self._select(node_ids, filters).ids)

    async def adelete_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
        **delete_kwargs: Any,
    ) -> None:
        _check_selection(node_ids, filters)
        await self._adelete_keys((await self._aselect(node_ids, filters)).ids)

    def clear(self) -> None:
        """Delete every node this store wrote from the buckets and the store.

        Only rows that carry a node id (written by `add`) go: a table shared
        with other writers, say passages `lshrs ingest` wrote into the same
        index, keeps their rows. The index definition (dimension, hash
        functions) stays in Redis, so the store can be refilled with
        embeddings of the same size; ``store.client.clear()`` drops it too.
        """
        self._delete_keys(self._lsh.find(_NODES))

    async def aclear(self) -> None:
        await self._adelete_keys(await self._lsh.afind(_NODES))

    def _delete_keys(self, keys: NDArray[np.int64]) -> None:
        for lo in range(0, len(keys), self._lsh.batch_size):
            self._lsh.delete(keys[lo : lo + self._lsh.batch_size])

    async def _adelete_keys(self, keys: NDArray[np.int64]) -> None:
        for lo in range(0, len(keys), self._lsh.batch_size):
            await self._lsh.adelete(keys[lo : lo + self._lsh.batch_size])

    # -- reads -------------------------------------------------------------

    def get_nodes(self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None) -> list[BaseNode]:
        """Stored nodes: those asked for (unknown ids left out), those passing `filters`, or all."""
        return _nodes(self._select(node_ids, filters))

    async def aget_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None
    ) -> list[BaseNode]:
        return _nodes(await self._aselect(node_ids, filters))

    def _select(self, node_ids: list[str] | None, filters: MetadataFilters | None) -> Rows:
        """Rows with payload of the given nodes that pass the filters (None: no restriction)."""
        wanted = to_filter(filters, None)
        if node_ids is not None:
            return _passing(self._lsh.get(keys_for(list(dict.fromkeys(node_ids)))), wanted)
        return self._lsh.get(self._lsh.find(wanted or _everything))

    async def _aselect(self, node_ids: list[str] | None, filters: MetadataFilters | None) -> Rows:
        wanted = to_filter(filters, None)
        if node_ids is not None:
            return _passing(await self._lsh.aget(keys_for(list(dict.fromkeys(node_ids)))), wanted)
        return await self._lsh.aget(await self._lsh.afind(wanted or _everything))

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """The `similarity_top_k` nearest nodes by cosine, within `node_ids`, `doc_ids` and `filters`.

        `node_ids` follows llama-index-core's convention for a store that
        keeps its own text: `VectorStoreIndex` then tracks only its image and
        index nodes, and its retriever passes their ids, which must not hide
        the text nodes. So ids naming only such nodes restrict nothing; ids
        naming any text node are a strict limit, answered exactly by cosine
        over just those nodes. An empty list restricts nothing.

        Modes: DEFAULT (by embedding), HYBRID (embedding and the store's
        keyword search on `query_str`, fused with weight `alpha`, default
        0.5) and TEXT_SEARCH (keywords alone); with the keyword modes,
        `similarities` are fusion scores, not cosines.

        Keyword arguments ``top_p`` and ``num_probes`` go to `LSHRS.query`.
        """
        options, vector, wanted = _plan(query, kwargs)
        if query.similarity_top_k == 0:
            return _result([])
        if query.node_ids:
            rows = self._lsh.get(keys_for(list(dict.fromkeys(query.node_ids))))
            if _limits(rows):
                if "alpha" not in options:  # by vector: exact cosine over just those nodes
                    return _result(_ranked(_passing(rows, wanted), vector, query.similarity_top_k))
                wanted = _within(wanted, query.node_ids)  # a keyword mode: the limit joins the filter
        return _result(self._lsh.query(vector, top_k=query.similarity_top_k, filter=wanted, **options))

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        options, vector, wanted = _plan(query, kwargs)
        if query.similarity_top_k == 0:
            return _result([])
        if query.node_ids:
            rows = await self._lsh.aget(keys_for(list(dict.fromkeys(query.node_ids))))
            if _limits(rows):
                if "alpha" not in options:  # by vector: exact cosine over just those nodes
                    return _result(_ranked(_passing(rows, wanted), vector, query.similarity_top_k))
                wanted = _within(wanted, query.node_ids)  # a keyword mode: the limit joins the filter
        return _result(await self._lsh.aquery(vector, top_k=query.similarity_top_k, filter=wanted, **options))


# Node types VectorStoreIndex tracks itself when the store keeps text (see LSHRSVectorStore.query).
_TRACKED_TYPES = ("IndexNode", "ImageNode")


def _limits(rows: Rows) -> bool:
    """Whether `node_ids` (read as `rows`) are a strict limit: they name a text node, or nothing stored."""
    types = [(meta or {}).get("_node_type") for meta in rows.metadata or []]
    return not types or any(t not in _TRACKED_TYPES for t in types)


# -- nodes <-> rows -------------------------------------------------------------


def _check_id_width(lsh: LSHRS) -> None:
    if lsh.id_bytes != ID_BYTES:
        raise ValueError(f"lsh: node ids need an index with id_bytes={ID_BYTES}, got id_bytes={lsh.id_bytes}")


@dataclass(frozen=True)
class _Batch:
    """Nodes as rows: string ids, integer keys, vectors, texts without metadata, node JSON as metadata."""

    ids: list[str]
    keys: NDArray[np.int64]
    vectors: NDArray[np.float32]
    texts: list[str]
    metadata: list[dict[str, Any]]

    @classmethod
    def of(cls, nodes: Sequence[BaseNode], flat: bool) -> _Batch:
        ids = [node.node_id for node in nodes]
        return cls(
            ids,
            keys_for(ids),
            _embeddings(nodes),
            [node.get_content(metadata_mode=MetadataMode.NONE) for node in nodes],
            [with_id(node_to_metadata_dict(n, remove_text=True, flat_metadata=flat), n.node_id) for n in nodes],
        )


def _check_selection(node_ids: list[str] | None, filters: MetadataFilters | None) -> None:
    if node_ids is None and filters is None:
        raise ValueError("delete_nodes: give node_ids or filters; clear() deletes every node")


def _everything(meta: Mapping[str, Any]) -> bool:
    return True


def _within(wanted: Filter | None, node_ids: list[str]) -> Filter:
    """`wanted` restricted to the given nodes: how a hybrid query honours a strict `node_ids`."""
    only = {ID_FIELD: {"$in": list(dict.fromkeys(node_ids))}}
    return only if wanted is None else {"$and": [wanted, only]}


def _passing(rows: Rows, wanted: Filter | None) -> Rows:
    return rows if wanted is None else matching(rows, as_predicate(wanted))


def _nodes(rows: Rows) -> list[BaseNode]:
    return [_node(k, t, m) for k, t, m in zip(rows.ids.tolist(), rows.texts or [], rows.metadata or [])]


def _plan(query: VectorStoreQuery, kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], Any, Any]:
    """(lshrs options, the query for LSHRS.query, filter) of a query, checked before any I/O.

    DEFAULT searches by the query's embedding. HYBRID fuses it with the
    store's keyword search on `query_str` (weight `alpha`, default 0.5, as
    `LSHRS.query` takes it: 1 is vectors only); TEXT_SEARCH is the keyword
    search alone, so it needs no embedding.
    """
    if query.similarity_top_k != 0:
        check_top(query.similarity_top_k, None)  # 0 asks for nothing, as in llama-index-core's own stores
    options, wanted = _query_options(kwargs), to_filter(query.filters, query.doc_ids)
    if query.mode in _KEYWORD_MODES and not query.query_str:
        raise ValueError(f"query: mode {query.mode.value!r} needs query_str, the text to match words of")
    if query.mode == VectorStoreQueryMode.TEXT_SEARCH:
        return {**options, "alpha": 0.0}, query.query_str, wanted
    if query.mode == VectorStoreQueryMode.HYBRID:
        alpha = 0.5 if query.alpha is None else query.alpha
        return {**options, "alpha": alpha, "keywords": query.query_str}, _query_vector(query), wanted
    return options, _query_vector(query), wanted


def _ranked(rows: Rows, vector: NDArray[np.float32], top_k: int) -> list[Hit]:
    """Exact cosine ranking of the given rows (a query restricted to node_ids)."""
    if len(rows) == 0:
        return []
    best = exact_top_k(vector[None, :], rows.ids, rows.vectors, top_k)
    at = {key: i for i, key in enumerate(rows.ids.tolist())}
    texts, metas = rows.texts or [None] * len(rows), rows.metadata or [None] * len(rows)
    scored = zip(best.ids.tolist(), best.value.tolist())
    return [Hit(key, score, texts[at[key]], metas[at[key]]) for key, score in scored]


def _result(hits: list[Hit]) -> VectorStoreQueryResult:
    nodes = [_node(hit.id, hit.text, hit.metadata) for hit in hits]
    return VectorStoreQueryResult(nodes=nodes, similarities=[h.score for h in hits], ids=[n.node_id for n in nodes])


def _embeddings(nodes: Sequence[BaseNode]) -> NDArray[np.float32]:
    missing = [node.node_id for node in nodes if node.embedding is None]
    if missing:
        raise ValueError(f"nodes: expected embeddings (embed nodes before adding them), missing for {missing[:5]}")
    sizes = sorted({len(node.embedding or ()) for node in nodes})
    if len(sizes) > 1:
        raise ValueError(f"nodes: expected embeddings of one size, got sizes {sizes}")
    return np.array([node.embedding for node in nodes], dtype=np.float32)


def _node(key: int, text: str | None, meta: dict[str, Any] | None) -> BaseNode:
    """Rebuild a node from its row; rows lshrs wrote itself (no node JSON) become plain TextNodes."""
    node_id, rest = split_metadata(meta)
    if "_node_content" in rest:
        return metadata_dict_to_node(rest, text=text)
    metadata, info, relationships = legacy_metadata_dict_to_node(rest)
    return TextNode(
        id_=node_id or str(key),
        text=text or "",
        metadata=metadata,
        relationships=relationships,
        start_char_idx=info.get("start"),
        end_char_idx=info.get("end"),
    )


def _query_vector(query: VectorStoreQuery) -> NDArray[np.float32]:
    if query.mode not in _MODES:
        supported = ", ".join(repr(mode.value) for mode in _MODES)
        raise ValueError(f"query: mode {query.mode.value!r} is not supported by LSHRSVectorStore, only {supported}")
    if query.query_embedding is None:
        raise ValueError("query: expected a query_embedding, got None")
    return np.asarray(query.query_embedding, dtype=np.float32)


def _query_options(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(kwargs) - set(_QUERY_OPTIONS))
    if unknown:
        raise TypeError(f"query: unexpected keyword arguments {unknown}; supported: {list(_QUERY_OPTIONS)}")
    return dict(kwargs)
