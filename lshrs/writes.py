"""ingest() and delete() as steps: the store first, then the buckets, under the writer lease.

Written once as generators of `steps.Step` (see steps.py), like the query in
search.py, so the sync and async verbs share every line. Step targets:
``index`` (the `Attachment`), ``model`` (embedding), ``buckets``, ``store``,
``build`` (a centroid index training itself), ``clock`` and ``interrupts``
(for the lease, see locks.py).

Why this order: the store is the truth. A replaced or deleted vector's old
bucket entries are found by re-hashing its stored copy, so a replacement
moves the entries before it overwrites the row, a new document is stored
before its entries are added, and a delete removes the entries before the
rows: whichever step a fault stops at, running the verb again completes it
(tests/test_fault_sweep.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from lshrs import inputs
from lshrs.attachment import Attachment
from lshrs.hashing import HashFamily
from lshrs.locks import locked
from lshrs.steps import Steps, call
from lshrs.stores.base import Metadata, Rows, capabilities


def ingest_steps(
    index: Attachment,
    texts: Sequence[str] | None,
    vectors: Any,
    ids: Any,
    metadata: Sequence[Metadata | None] | None,
    batch_size: int,
) -> Steps[NDArray[np.int64]]:
    """Validate the whole batch, then write it in parts of `batch_size` rows; returns the ids written."""
    if texts is None and vectors is None:
        raise ValueError("ingest: give texts, vectors, or both")
    text_list = inputs.as_texts(texts) if texts is not None else None
    vectors_from_texts = vectors is None
    if vectors_from_texts:
        vectors = yield call("model", "embed", text_list)
    batch = validate(index, text_list, vectors, ids, metadata)
    can = capabilities(index.store)
    if can.check:  # what only the store knows it cannot hold
        index.store.check(batch.texts, batch.metadata)  # type: ignore[attr-defined]
    if can.check_ids and ids is not None:
        index.store.check_ids(batch.ids)  # type: ignore[attr-defined]
    family = index.family or (yield call("index", "ready", batch.vectors.shape[1]))
    if vectors_from_texts:
        yield call("model", "remember_model")  # the index now exists: keep the model that embedded its texts
    written = []
    for lo in range(0, len(batch), batch_size):
        part = slice_rows(batch, lo, lo + batch_size)
        while True:
            if ids is None:
                part.ids = yield from new_ids(len(part), index.id_bytes)
                if can.check_ids:
                    index.store.check_ids(part.ids)  # type: ignore[attr-defined]
            if (yield from locked(index.name, part.ids, replace_steps(index, part, family, fresh=ids is None))):
                break  # else another writer took a drawn id between the draw and the lock: draw again
        written.append(part.ids)
    if not (index.family or family).trained or (yield call("index", "outgrown")):
        # a centroid index trains itself once its store is large enough, and again as it grows
        yield call("build", "train_and_index", index, batch_size)
    return np.concatenate(written)


def replace_steps(index: Attachment, part: Rows, family: HashFamily, *, fresh: bool = False) -> Steps[bool]:
    """Write a part to the store and its entries to the buckets, in the order a fault cannot break.

    An id the store already holds has its old entries where its stored
    vector hashes, so its buckets move first, while the store still says
    where they are, and the store is written after: a fault between the two
    leaves the old row, and running the write again finds the old entries
    from it. (Store first, a fault before the buckets moved lost the only
    record of where the old entries were: they stayed, stale, for good.)
    The move removes the new entries too, so running it twice changes nothing.
    An id the store lacks goes the other way, store first, so a fault never
    leaves entries for a row that does not exist; running it again finds the
    row and takes the first path.

    With `fresh` (ids just drawn for new documents) nothing is written, and
    False returned, when a row already holds one of them: under the lock, so
    an explicit ingest of that id by another writer is never overwritten.
    """
    old = yield call("store", "get", part.ids, payload=False)
    if fresh and len(old):
        return False
    family = yield from trained_now(family)
    if not family.trained:  # no buckets yet: the store is all there is until the centroids are trained
        yield call("store", "put", part.ids, part.vectors, part.texts, part.metadata)
        return True
    held = np.isin(part.ids, old.ids)
    if held.any():
        ids, vectors = part.ids[held], part.vectors[held]
        moved = entries(index, family, np.concatenate([old.ids, ids]), np.concatenate([old.vectors, vectors]))
        yield call("buckets", "apply", add=entries(index, family, ids, vectors), remove=moved)
    yield call("store", "put", part.ids, part.vectors, part.texts, part.metadata)
    if not held.all():
        yield call("buckets", "apply", add=entries(index, family, part.ids[~held], part.vectors[~held]))
    return True


def delete_steps(index: Attachment, ids: Any) -> Steps[int]:
    """Remove documents from the buckets, then the store; returns how many were stored."""
    id_arr = inputs.as_ids(ids, id_bytes=index.id_bytes)
    if index.family is None and not (yield call("index", "attach")):
        return 0  # no index and no stored vectors: nothing anywhere to delete
    assert index.family is not None
    return (yield from locked(index.name, id_arr, remove_steps(index, id_arr, index.family)))


def remove_steps(index: Attachment, ids: NDArray[np.int64], family: HashFamily) -> Steps[int]:
    rows = yield call("store", "get", ids, payload=False)
    if not len(rows):
        return 0
    family = yield from trained_now(family)
    if family.trained:
        yield call("buckets", "apply", remove=entries(index, family, rows.ids, rows.vectors))
    return int((yield call("store", "delete", rows.ids)))


def trained_now(family: HashFamily) -> Steps[HashFamily]:
    """The family to write with, asked again under the lease when this process knew it untrained.

    Another process may have trained the index since: its definition swap
    waits for every lease (Attachment.train), so asked here, the answer holds
    until this writer lets go. Writing a trained index's rows as if it had no
    buckets left them out of its build, or a deleted id in it.
    """
    if family.trained:
        return family
    return (yield call("index", "reload"))


def entries(index: Attachment, family: HashFamily, ids: NDArray[np.int64], vectors: NDArray[np.float32]) -> Any:
    """The bucket entries of these rows: their buckets, and their ranking codes where the family keeps them."""
    marks = family.rank_codes(vectors) if family.code_bytes else None
    return index.buckets.group(ids, family.codes(vectors), marks)


def new_ids(n: int, id_bytes: int) -> Steps[NDArray[np.int64]]:
    """Ids from a counter in Redis, skipping any the store already holds.

    Each time the drawn block is taken, the next draw jumps twice as far (the
    ids jumped over are left unused), so a store already holding ids 1..N
    costs about log2(N / n) round trips, not N / n (20,000 rows took 1.6 s on
    SQLite one block at a time).
    """
    step = n
    while True:
        end = yield call("buckets", "next_ids", step)
        ids = np.arange(end - n + 1, end + 1, dtype=np.int64)
        highest = inputs.id_range(id_bytes)[1]
        if end > highest:
            raise ValueError(f"ids: the id counter passed {highest}, the largest id_bytes={id_bytes} holds; pass ids=")
        if len((yield call("store", "get", ids, payload=False))) == 0:
            return ids
        step *= 2


def validate(index: Attachment, texts: list[str] | None, vectors: Any, ids: Any, metadata: Any) -> Rows:
    """The whole batch checked before the first write (inputs.py has the error contract)."""
    vecs = inputs.as_vectors(vectors, dim=index.dim)
    n = len(vecs)
    if texts is not None:
        inputs.check_length("texts", len(texts), n)
    meta = inputs.as_metadata(metadata, n)
    id_arr = inputs.as_ids(ids, id_bytes=index.id_bytes) if ids is not None else np.zeros(n, np.int64)
    inputs.check_length("ids", len(id_arr), n)
    return Rows(id_arr, vecs, list(texts) if texts is not None else None, meta)


def slice_rows(rows: Rows, lo: int, hi: int) -> Rows:
    return Rows(
        rows.ids[lo:hi],
        rows.vectors[lo:hi],
        None if rows.texts is None else rows.texts[lo:hi],
        None if rows.metadata is None else rows.metadata[lo:hi],
    )
