"""Which embedding model turns an index's texts into vectors, kept with the index.

An index holds the vectors of one model. A query embedded by another model
of the same dimension finds neighbours that mean nothing, and no check on
shapes would notice. So the model's name is saved in the index's meta at
the first ingest of texts; an instance that names another model is refused
before it embeds anything, and one that names none embeds with the saved
one (so ``lshrs query`` needs no --model after the demo or an ingest).

Only names are compared. A model given as a name is known by it (the
offline MiniLM's two spellings count as one); a SentenceTransformer object
by the base model its card names, when it names one; a plain callable is
unknown, and neither saved nor checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from lshrs.definition import MODEL
from lshrs.embeddings import (
    BACKENDS,
    DEFAULT_MODEL,
    OFFLINE_ALIASES,
    Embedder,
    SentenceTransformerEmbedder,
    make_embedder,
    parse_devices,
)

if TYPE_CHECKING:
    from lshrs.attachment import Attachment


def model_name(model: Any) -> str | None:
    """The name a model is known by, or None when it cannot be told."""
    if isinstance(model, str):
        return DEFAULT_MODEL if model in OFFLINE_ALIASES else model
    if isinstance(model, SentenceTransformerEmbedder):
        return model_name(model.name) if model.name is not None else model_name(model.model)
    card = getattr(model, "model_card_data", None)
    base = getattr(card, "base_model", None)
    return model_name(base) if isinstance(base, str) and base else None


class TextModel:
    """The embedding model of one `LSHRS` instance: as given, else the index's saved one, else the default."""

    def __init__(self, given: Any, batch_size: int, device: Any = None, backend: str = "auto") -> None:
        self.given = given
        self.batch_size = batch_size
        if backend not in BACKENDS:  # refused when the index is made, not at its first text
            raise ValueError(f"embedding backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
        parse_devices(device)
        self.device = device
        self.backend = backend
        self._embedder: Embedder | None = None

    def embed(self, texts: Sequence[str], index: Attachment) -> NDArray[np.float32]:
        """Vectors of `texts`; ValueError, before loading anything, when the index was built with another model."""
        saved = index.saved_model
        self.check(index.name, saved)
        if self._embedder is None:
            self._embedder = make_embedder(
                self.given if self.given is not None else saved,
                self.batch_size,
                device=self.device,
                backend=self.backend,
            )
        return np.asarray(self._embedder(list(texts)))

    def close(self) -> None:
        """Stop the worker processes of an embedder this instance made (not one the caller passed in)."""
        if isinstance(self._embedder, SentenceTransformerEmbedder) and self._embedder is not self.given:
            self._embedder.close()

    def check(self, name: str, saved: str | None) -> None:
        mine = model_name(self.given)
        if saved is not None and mine is not None and mine != saved:
            raise ValueError(
                f"index {name!r} holds vectors of the model {saved!r}, not {mine!r}: embedding texts with another "
                f"model gives meaningless neighbours; pass embedding_model={saved!r} (or leave it out)"
            )

    def name(self, saved: str | None) -> str | None:
        """The name this instance embeds with, when it is known."""
        if self.given is None:
            return saved or DEFAULT_MODEL
        return model_name(self.given)

    def remember(self, index: Attachment) -> None:
        """Save this instance's model with the index (after an ingest of texts), unless one is saved already."""
        name = self.name(index.saved_model)
        if name is None or index.saved_model is not None:
            return
        index.saved_model = index.buckets.claim_meta(MODEL, name)
        self.check(index.name, index.saved_model)  # another writer may have saved another model first
