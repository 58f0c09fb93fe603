"""index(): bucket builds over rows already in the store, resumable after a crash.

The store is scanned in ascending id order; the last id of each written
chunk is the checkpoint (``indexed_through`` in the definition), so a re-run
continues after it and a finished build later picks up only new rows. Works
on an `Attachment` (definition, hash family, buckets, store); never on an `LSHRS`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from lshrs import inputs, locks, progress, steps
from lshrs.attachment import Attachment
from lshrs.definition import BuildState, Meta
from lshrs.steps import Steps, call
from lshrs.stores.base import Rows
from lshrs.stores.pages import Pages

log = logging.getLogger("lshrs")

# Bucket entries pooled per write pipeline (see hashed_chunks): about 40 MB
# of ids and codes. Each pipeline touches nearly every bucket once, so fewer,
# larger ones do less work in Redis: a 122k-vector build at L=16 took 2.6 s
# with one pipeline of 4M entries and 3.2 s with two of 1.5M.
FLUSH_ENTRIES = 4_000_000
# At most this many rows per chunk: index() holds the writer lease of every id while
# it reads, hashes and writes a chunk (see next_chunk), which must stay well inside
# the lease's LOCK_TTL_MS and leaves other writers waiting meanwhile. A centroid
# index writes one entry per row, so FLUSH_ENTRIES alone would allow 4M rows.
FLUSH_ROWS = 250_000


@dataclass(frozen=True)
class Plan:
    """How a build treats entries that may already be in the buckets.

    Attributes:
        fresh: nothing is in the buckets: chunks are only appended.
        dedupe_first: the chunk after the checkpoint may be half written
            (a fresh build died mid-pipeline): remove its ids before adding them.
        dedupe_all: rows may already be in the buckets (ingest(), a crashed
            incremental build): remove every chunk's ids before adding them.
        recount: a build died: the entry counter, which rides at the end of
            each pipeline, may be off; count the buckets at the end.
    """

    fresh: bool
    dedupe_first: bool
    dedupe_all: bool
    recount: bool


def plan(meta: Meta, entries: int) -> Plan:
    """What a build must dedupe, from the state the last one left.

    A build that died leaves its state FRESH or RUNNING. One that died in the
    middle of its first pipeline left no checkpoint and a zero entry counter
    (the counter rides at the end of the pipeline), yet some buckets hold
    entries: only the state tells, so it is never taken for a fresh start.
    """
    died = meta.build in (BuildState.FRESH, BuildState.RUNNING)
    fresh = meta.indexed_through is None and entries == 0 and not died
    dedupe_all = not fresh and meta.build is not BuildState.FRESH
    return Plan(fresh, not fresh, dedupe_all, died)


def index_arrays(index: Attachment, ids: Any, vectors: Any, batch_size: int) -> int:
    """`index(ids, vectors)`: hash arrays whose rows the caller keeps in the store."""
    vecs = inputs.as_vectors(vectors, dim=index.dim)
    id_arr = inputs.as_ids(ids, id_bytes=index.id_bytes)
    inputs.check_length("ids", len(id_arr), len(vecs))
    batches = (
        Rows(id_arr[lo : lo + batch_size], vecs[lo : lo + batch_size]) for lo in range(0, len(id_arr), batch_size)
    )
    check_stored(index, id_arr)
    family = index.ready(vecs.shape[1])
    if not family.trained and not index.train(batch_size):
        raise ValueError("index(ids, vectors): this centroid index is not trained yet, and its store is too small")
    # Ids already in the buckets (a second call, rows ingest() placed) are removed before
    # they are added, so a repeat changes nothing; an empty index has nothing to remove.
    again = index.buckets.entry_count() > 0
    for chunk_ids, codes, marks in hashed_chunks(index, batches):
        group = index.buckets.group(chunk_ids, codes, marks)
        index.buckets.apply(add=group, remove=group if again else None)
    index.buckets.collect_script_garbage()
    return len(id_arr)


# Ids of an `index(ids, vectors)` call looked up in the store before anything is written.
STORED_SAMPLE = 1_000


def check_stored(index: Attachment, ids: NDArray[np.int64]) -> None:
    """Warn about arrays whose rows the store lacks: queries find them, then drop them unscored.

    A uniform sample of the ids is looked up (`STORED_SAMPLE`), which catches
    the usual mistake (arrays indexed before, or instead of, loading the
    store) without reading every vector back. A warning, not an error:
    bucket-only benchmarks and drift tests index arrays on purpose.
    """
    rng = np.random.default_rng(0)
    sample = ids if len(ids) <= STORED_SAMPLE else rng.choice(ids, STORED_SAMPLE, replace=False)
    found = index.store.get(np.sort(sample), payload=False)
    if len(found) < len(sample):
        missing = np.setdiff1d(sample, found.ids)[:5].tolist()
        log.warning(
            "index %r: %d of %d ids checked are not in the store (e.g. %s); index(ids, vectors) indexes rows "
            "you keep in the store: queries cannot return the others",
            index.name, len(sample) - len(found), len(sample), missing,
        )  # fmt: skip


def train_and_index(index: Attachment, batch_size: int, show_progress: bool = False, again: bool = False) -> int:
    """Train a centroid index on its store and place every row; 0 while the store is too small to train.

    `again` retrains an index already trained (index(retrain=True)); without
    it, an index another process trained meanwhile keeps its centroids.
    """
    if not index.train(batch_size, show_progress=show_progress, again=again):
        return 0
    return index_store(index, batch_size, show_progress)


def index_store(index: Attachment, batch_size: int, show_progress: bool) -> int:
    """`index()`: every stored row past the last checkpoint, in id order."""
    if index.family is None and not index.attach():
        return 0  # an empty store and no index yet: nothing to build, and no half-made index left behind
    assert index.family is not None
    if not index.family.trained and not index.train(batch_size, show_progress=show_progress):
        return 0  # a centroid index whose store is still too small to train: queries scan it
    meta = index.read_meta()
    assert meta is not None
    buckets = index.buckets
    if meta.build is BuildState.REDEFINE:
        buckets.drop_buckets()  # they were hashed with the old family; the meta counts none of them
    seen = buckets.write_marks()  # before the plan: a writer after this point is noticed by next_chunk
    how = plan(meta, int(seen[0] or 0))
    buckets.set_meta(build=(BuildState.FRESH if how.fresh else BuildState.RUNNING).value)
    targets = {
        "pages": Pages(index.store),
        "buckets": buckets,
        "leases": locks.Heartbeats(buckets),
        "clock": steps.Clock,
        "interrupts": steps.Interrupts(),
    }
    done, after, dedupe_all = 0, meta.indexed_through, how.dedupe_all
    with progress.bar(
        f"indexing {index.name}", show=show_progress, total=index.store.count() if show_progress else None
    ) as shown:
        while True:
            dedupe = dedupe_all or (how.dedupe_first and after == meta.indexed_through)
            lease = locks.Lease(locks.every_stripe().tolist(), ttl_ms=locks.BUILD_LEASE_MS)
            chunk = next_chunk(index, Cursor(after, seen, dedupe), batch_size, shown, lease)
            written = steps.run(locks.locked(index.name, locks.every_stripe(), chunk, lease), targets)
            if written is None:
                break
            after, seen = written.after, written.seen
            done += written.rows
            dedupe_all = dedupe_all or written.dedupe  # another writer may have placed rows the scan has yet to read
            if buckets.writers_waited():  # let them in before taking every stripe again
                time.sleep(locks.BUILD_YIELD_S)
    if how.recount:
        buckets.set_meta(entries=int(buckets.bucket_sizes().sum()))
    buckets.set_meta(build=BuildState.DONE.value)
    if done:
        buckets.collect_script_garbage()
    return done


@dataclass(frozen=True)
class Cursor:
    """Where a build stands between chunks.

    Attributes:
        after: the last id written (None before the first).
        seen: the entry counter and generation after the build's last write
            (`Buckets.write_marks`); anything else means another writer wrote.
        dedupe: remove each id's entries before adding them.
        rows: rows the last chunk wrote.
    """

    after: int | None
    seen: tuple[Any, Any]
    dedupe: bool
    rows: int = 0


def next_chunk(index: Attachment, at: Cursor, batch_size: int, shown: Any, lease: locks.Lease) -> Steps[Cursor | None]:
    """Read, hash and write the rows after `at.after`, up to a chunk; the cursor after it, or None at the end.

    Runs holding the writer lease of every id (locks.py), so no ingest() or
    delete() falls between the read of a row and the write of its entries:
    without it, a build wrote the entries of a row deleted or replaced
    meanwhile (a query could return a deleted id). A writer that wrote
    between two chunks (the entry counter or the generation moved) may have
    placed rows the scan reads later: from then on every chunk removes its
    ids' entries before adding them, so none is placed twice. Pages are read
    one query at a time, so no store transaction outlives the chunk.
    """
    now = yield call("buckets", "write_marks")
    dedupe = at.dedupe or now != at.seen
    parts: list[Chunk] = []
    entries = rows = 0
    after = at.after
    while entries < FLUSH_ENTRIES and rows < FLUSH_ROWS:
        page = yield call("pages", "page", after, batch_size, payload=False)  # texts are not hashed
        if page is None:
            break
        parts.append(hash_rows(index, page))
        entries += parts[-1][1].size  # (rows, tables) codes: one entry each
        rows += len(page)
        after = int(page.ids[-1])
        if shown is not None:
            shown.update(len(page))
        yield from lease.renew()
    if not parts:
        return None
    ids, codes, marks = _pool(parts)
    group = index.buckets.group(ids, codes, marks)
    yield call("buckets", "apply", add=group, remove=group if dedupe else None)
    yield call("buckets", "set_meta", indexed_through=int(ids[-1]))
    seen = yield call("buckets", "write_marks")
    return Cursor(int(ids[-1]), seen, dedupe, len(ids))


Chunk = tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.uint8] | None]


def hash_rows(index: Attachment, rows: Rows) -> Chunk:
    """The bucket codes (and ranking codes) of one batch of stored rows, their ids checked against the width."""
    inputs.check_width(rows.ids, index.id_bytes, name="stored ids", hint="; make the index with id_bytes=8")
    family = index.ready(rows.vectors.shape[1])
    vectors = inputs.as_vectors(rows.vectors, dim=family.dim, name="stored vectors")
    return rows.ids, family.codes(vectors), family.rank_codes(vectors) if family.code_bytes else None


def hashed_chunks(index: Attachment, batches: Iterable[Rows]) -> Iterator[Chunk]:
    """Hash batches of rows and regroup them into chunks of about `FLUSH_ENTRIES` bucket entries.

    A bucket write costs one script step per distinct bucket touched, so
    a build is fastest when each write carries many ids per bucket: the
    codes of several store batches are pooled (16 bytes per vector per
    table, plus any ranking code: far less than the vectors) before they go to Redis.
    """
    pooled: list[Chunk] = []
    entries = 0
    for rows in batches:
        pooled.append(hash_rows(index, rows))
        entries += pooled[-1][1].size
        if entries >= FLUSH_ENTRIES:
            yield _pool(pooled)
            pooled, entries = [], 0
    if pooled:
        yield _pool(pooled)


def _pool(parts: list[Chunk]) -> Chunk:
    ids, codes, marks = zip(*parts)
    return np.concatenate(ids), np.concatenate(codes), None if marks[0] is None else np.concatenate(marks)
