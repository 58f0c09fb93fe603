"""Uniform samples of a store, read in one scan: what centroids are trained on and the tuner measures.

Reads the store only, in ascending id order, ids and vectors (no payload);
never writes anything and knows nothing of Redis.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from lshrs import inputs, progress
from lshrs.stores.base import Rows, Store
from lshrs.stores.pages import Pages


@dataclass(frozen=True)
class Source:
    """Where the sample comes from: the user's store, read in batches."""

    store: Store
    name: str
    dim: int | None
    batch_size: int
    show_progress: bool


def reservoir(source: Source, size: int, rng: np.random.Generator) -> tuple[Rows, int]:
    """A uniform random sample of up to `size` stored rows, in random order, from one scan; and the rows scanned.

    Every row gets a random key and the `size` smallest keys are kept
    (bottom-k sampling), pruned batch by batch, so memory stays at the
    sample plus one batch and the store is read once.
    """
    ids, vectors, keys = np.empty(0, np.int64), None, np.empty(0)
    seen = 0
    for rows in scan(source, "sampling"):
        seen += len(rows)
        ids = np.concatenate([ids, rows.ids])
        vectors = rows.vectors if vectors is None else np.concatenate([vectors, rows.vectors])
        keys = np.concatenate([keys, rng.random(len(rows))])
        if len(keys) > size:
            keep = np.argpartition(keys, size - 1)[:size]
            ids, vectors, keys = ids[keep], vectors[keep], keys[keep]
    if vectors is None:
        raise ValueError(f"index {source.name!r}: the store is empty; pass vectors= to tune on")
    order = np.argsort(keys)
    return Rows(ids[order], vectors[order]), seen


def scan(source: Source, what: str) -> Iterator[Rows]:
    """The store's rows (ids and vectors), checked, with a progress bar when the index shows one."""
    total = source.store.count() if source.show_progress else None
    with progress.bar(f"tuning {source.name}: {what}", show=source.show_progress, total=total) as bar:
        for rows in Pages(source.store).scan(source.batch_size, payload=False):
            bar.update(len(rows))
            yield Rows(rows.ids, inputs.as_vectors(rows.vectors, dim=source.dim, name="stored vectors"))
