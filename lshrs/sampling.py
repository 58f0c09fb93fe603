"""Uniform samples of a store, read in one scan: what centroids are trained on and the tuner measures.

Reads the store only, in ascending id order, ids and vectors (no payload);
never writes anything and knows nothing of Redis.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

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
    (bottom-k sampling), so the store is read once and memory stays under
    twice the sample plus one batch. Once the sample is full, a row whose
    key is above the largest kept key cannot enter it and is dropped before
    any copy, and the kept rows are pruned only when twice the sample:
    copying every batch into the sample and pruning it each time cost 0.17 s
    of a 2.4 s build of 121,900 rows.
    """
    parts: list[tuple[NDArray[np.int64], NDArray[np.float32], NDArray[np.float64]]] = []
    held = seen = 0
    bound = np.inf  # the largest kept key once the sample is full
    for rows in scan(source, "sampling"):
        seen += len(rows)
        drawn = rng.random(len(rows))
        enter = np.flatnonzero(drawn < bound)
        parts.append((rows.ids[enter], rows.vectors[enter], drawn[enter]))
        held += len(enter)
        if held >= 2 * size:  # pruned when twice full: each prune copies the whole sample
            parts = [_smallest_keys(parts, size)]
            held, bound = size, float(parts[0][2].max())
    if not parts:
        raise ValueError(f"index {source.name!r}: the store is empty; pass vectors= to tune on")
    ids, vectors, keys = _smallest_keys(parts, size)
    order = np.argsort(keys)
    return Rows(ids[order], vectors[order]), seen


def _smallest_keys(
    parts: list[tuple[NDArray[np.int64], NDArray[np.float32], NDArray[np.float64]]], size: int
) -> tuple[NDArray[np.int64], NDArray[np.float32], NDArray[np.float64]]:
    """The rows of the `size` smallest keys among `parts` (ids, vectors, keys), in no particular order."""
    ids, vectors, keys = (np.concatenate(column) for column in zip(*parts))
    if len(keys) > size:
        keep = np.argpartition(keys, size - 1)[:size]
        ids, vectors, keys = ids[keep], vectors[keep], keys[keep]
    return ids, vectors, keys


def scan(source: Source, what: str) -> Iterator[Rows]:
    """The store's rows (ids and vectors), checked, with a progress bar when the index shows one."""
    total = source.store.count() if source.show_progress else None
    with progress.bar(f"tuning {source.name}: {what}", show=source.show_progress, total=total) as bar:
        for rows in Pages(source.store).scan(source.batch_size, payload=False):
            bar.update(len(rows))
            yield Rows(rows.ids, inputs.as_vectors(rows.vectors, dim=source.dim, name="stored vectors"))
