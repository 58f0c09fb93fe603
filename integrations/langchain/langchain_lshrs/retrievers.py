"""`LSHRSRetriever`: a retriever whose `k` can be set once or per call (``invoke(q, k=1)``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever

from langchain_lshrs.vectorstores import LSHRSVectorStore


class LSHRSRetriever(BaseRetriever):
    """The `k` nearest documents of an `LSHRSVectorStore`, reranked by exact cosine.

    `VectorStore.as_retriever()` also works (search types similarity,
    similarity_score_threshold, mmr); this class adds a `k` field and call-time
    `k` / `filter` / `top_p` / `alpha`. `filter` is a dict in lshrs's filter language
    (``{"year": {"$gte": 2021}}``) or a callable of the metadata dict. `alpha`
    in [0, 1] makes it a hybrid retriever: the vector search fused with the
    store's keyword search (0 is keywords alone; see `LSHRS.query`).
    """

    vectorstore: LSHRSVectorStore
    k: int = 4
    filter: dict[str, Any] | Callable[[dict[str, Any]], bool] | None = None
    top_p: float | None = None
    alpha: float | None = None

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: int | None = None,
        filter: dict[str, Any] | Callable[[dict[str, Any]], bool] | None = None,
        top_p: float | None = None,
        alpha: float | None = None,
    ) -> list[Document]:
        return self.vectorstore.similarity_search(query, **self._search_args(k, filter, top_p, alpha))

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        k: int | None = None,
        filter: dict[str, Any] | Callable[[dict[str, Any]], bool] | None = None,
        top_p: float | None = None,
        alpha: float | None = None,
    ) -> list[Document]:
        return await self.vectorstore.asimilarity_search(query, **self._search_args(k, filter, top_p, alpha))

    def _search_args(self, k: int | None, filter: Any, top_p: float | None, alpha: float | None) -> dict[str, Any]:
        return {
            "k": self.k if k is None else k,
            "filter": self.filter if filter is None else filter,
            "top_p": self.top_p if top_p is None else top_p,
            "alpha": self.alpha if alpha is None else alpha,
        }
