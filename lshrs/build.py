"""index(): bucket builds over rows already in the store, resumable after a crash.

The store is scanned in ascending id order; the last id of each written
chunk is the checkpoint (``indexed_through`` in the index's meta hash), so a
re-run continues after it and a finished build later picks up only new rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from lshrs import inputs
from lshrs.search import Pages
from lshrs.stores.base import Rows, Store

if TYPE_CHECKING:
    from lshrs.index import LSHRS

# Bucket entries pooled per write pipeline (see hashed_chunks): about 40 MB
# of ids and codes. Each pipeline touches nearly every bucket once, so fewer,
# larger ones do less work in Redis: a 122k-vector build at L=16 took 2.6 s
# with one pipeline of 4M entries and 3.2 s with two of 1.5M.
FLUSH_ENTRIES = 4_000_000
# The meta's build state after `LSHRS._redefine` (new tables/bits): the old buckets are still to drop.
REDEFINE = "redefine"


def index_arrays(lsh: LSHRS, ids: Any, vectors: Any) -> int:
    """`index(ids, vectors)`: hash arrays whose rows the caller keeps in the store."""
    vecs = inputs.as_vectors(vectors, dim=lsh.dim)
    id_arr = lsh._ids(ids)
    inputs.check_length("ids", len(id_arr), len(vecs))
    batches = (
        Rows(id_arr[lo : lo + lsh.batch_size], vecs[lo : lo + lsh.batch_size])
        for lo in range(0, len(id_arr), lsh.batch_size)
    )
    for chunk_ids, codes in hashed_chunks(lsh, batches, None):
        lsh.buckets.apply(add=lsh.buckets.group(chunk_ids, codes))
    return len(id_arr)


def index_store(lsh: LSHRS) -> int:
    """`index()`: every stored row past the last checkpoint, in id order."""
    if lsh.hasher is None and not lsh._attach():
        return 0  # an empty store and no index yet: nothing to build, and no half-made index left behind
    meta = lsh.buckets.read_meta()
    if meta.get("build") == REDEFINE.encode():
        lsh.buckets.drop_buckets()  # they were hashed with the old planes; the meta counts none of them
    checkpoint = int(meta["indexed_through"]) if "indexed_through" in meta else None
    fresh = checkpoint is None and lsh.buckets.entry_count() == 0
    # A fresh build only appends. A resumed or incremental one removes
    # each chunk's ids before appending, so rows that a crash or ingest()
    # already placed are not placed twice.
    careful = not fresh and meta.get("build") != b"fresh"
    # A build that died mid-pipeline may have written buckets without
    # counting them (the count rides at the end of each pipeline).
    crashed = meta.get("build") in (b"fresh", b"running")
    first = True
    lsh.buckets.set_meta(build="fresh" if fresh else "running")
    done = 0
    with progress(lsh.show_progress, lsh.store, lsh.name) as bar:
        rows = Pages(lsh.store).scan(lsh.batch_size, after=checkpoint, payload=False)  # texts are not hashed
        for ids, codes in hashed_chunks(lsh, rows, bar):
            group = lsh.buckets.group(ids, codes)
            lsh.buckets.apply(add=group, remove=group if (careful or (first and not fresh)) else None)
            lsh.buckets.set_meta(indexed_through=int(ids[-1]))
            first = False
            done += len(ids)
    if crashed:
        lsh.buckets.set_meta(entries=int(lsh.buckets.bucket_sizes().sum()))
    lsh.buckets.set_meta(build="done")
    return done


def hashed_chunks(
    lsh: LSHRS, batches: Iterable[Rows], bar: Any
) -> Iterator[tuple[NDArray[np.int64], NDArray[np.int64]]]:
    """Hash batches of rows and regroup them into chunks of about `FLUSH_ENTRIES` bucket entries.

    A bucket write costs one script step per distinct bucket touched, so
    a build is fastest when each write carries many ids per bucket: the
    codes of several store batches are pooled (16 bytes per vector per
    table, far less than the vectors) before they go to Redis.
    """
    pooled_ids: list[NDArray[np.int64]] = []
    pooled_codes: list[NDArray[np.int64]] = []
    pooled = 0
    for rows in batches:
        hasher = lsh._ready(rows.vectors.shape[1])
        vectors = inputs.as_vectors(rows.vectors, dim=hasher.planes.shape[0], name="stored vectors")
        pooled_ids.append(rows.ids)
        pooled_codes.append(hasher.codes(vectors))
        pooled += len(rows.ids) * hasher.num_tables
        if bar is not None:
            bar.update(len(rows.ids))
        if pooled >= FLUSH_ENTRIES:
            yield np.concatenate(pooled_ids), np.concatenate(pooled_codes)
            pooled_ids, pooled_codes, pooled = [], [], 0
    if pooled_ids:
        yield np.concatenate(pooled_ids), np.concatenate(pooled_codes)


def progress(show: bool, store: Store, name: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=store.count() if show else None, desc=f"indexing {name}", unit="rows", disable=not show)
