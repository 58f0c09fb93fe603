"""verify(), repair() and stats(): the buckets against a fresh re-hash of the store, and their sizes.

The store is the truth (it is written first); the buckets should hold each
stored id exactly once per table, in the bucket its stored vector hashes to.
Drift comes from crashes between the two writes, from writers that bypass
lshrs, or from a Redis restored from an older snapshot. Both functions read
every bucket and every stored vector: about 16 bytes of memory per (vector,
table) entry on each side, so a 6.4M-vector, 12-table index needs ~2.5 GB.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from lshrs import connection
from lshrs.attachment import Attachment
from lshrs.steps import Steps, call
from lshrs.stores.base import find_sorted
from lshrs.stores.pages import Pages

SAMPLE = 10
_ENTRY = np.dtype((np.void, 16))  # (bucket, id) as one comparable 16-byte value


@dataclass(frozen=True)
class Drift:
    """Entries as (bucket, id) pairs, bucket = table << num_bits | code."""

    expected: NDArray[np.int64]  # (n, 2)
    found: NDArray[np.int64]  # (m, 2)
    missing: NDArray[np.int64]  # expected, not found
    stale: NDArray[np.int64]  # found, not expected
    repeated: NDArray[np.int64]  # found more than once (each listed once)
    store_rows: int


def measure(index: Attachment, batch_size: int) -> Drift:
    """Both sides read whole: the entries the store implies, and the entries the buckets hold."""
    expected, rows = _expected(index, batch_size)
    found = _found(index)
    e, f = _as_entries(expected), _as_entries(found)
    unique, first, counts = np.unique(f, return_index=True, return_counts=True)
    return Drift(
        expected,
        found,
        expected[~np.isin(e, f)],
        found[~np.isin(f, e)],
        found[first[counts > 1]],
        rows,
    )


def repair_steps(index: Attachment, batch_size: int) -> Steps[dict[str, Any]]:
    """repair() under the writer lease: measure, fix, and return the report from before."""
    drift = yield call("audit", "measure", index, batch_size)
    before = report(index, drift)
    yield call("audit", "fix", index, drift)
    return before


def stats(index: Attachment) -> dict[str, Any]:
    """Counts, parameters, bucket-size distribution and Redis memory; one SCAN of the index's keys."""
    sizes = index.buckets.bucket_sizes()
    pct = np.percentile(sizes, [50, 90, 99]).tolist() if len(sizes) else [0, 0, 0]
    return {
        "count": index.count(),
        "store_count": index.store.count(),
        **({} if index.definition is None else index.definition.params),
        "buckets": int(len(sizes)),
        "bucket_size": {
            "mean": float(sizes.mean()) if len(sizes) else 0.0,
            "p50": pct[0],
            "p90": pct[1],
            "p99": pct[2],
            "max": int(sizes.max()) if len(sizes) else 0,
        },
        "bucket_payload_bytes": int(sizes.sum()) * index.buckets.layout.entry_bytes,
        "redis_used_memory": connection.used_memory(index.buckets.client),
    }


def report(index: Attachment, drift: Drift) -> dict[str, Any]:
    counter = index.buckets.entry_count()
    return {
        "ok": not (len(drift.missing) or len(drift.stale) or len(drift.repeated)) and counter == len(drift.found),
        "store_rows": drift.store_rows,
        "expected_entries": len(drift.expected),
        "found_entries": len(drift.found),
        "missing_entries": len(drift.missing),
        "stale_entries": len(drift.stale),
        "repeated_entries": len(drift.repeated),
        "entry_counter": counter,
        "missing_ids": _sample(drift.missing),
        "stale_ids": _sample(drift.stale),
        "repeated_ids": _sample(drift.repeated),
    }


def fix(index: Attachment, drift: Drift) -> None:
    """Drop stale and repeated entries, add missing ones (repeated expected ones once), reset the counter."""
    remove = np.concatenate([drift.stale, drift.repeated])
    readd = drift.repeated[np.isin(_as_entries(drift.repeated), _as_entries(drift.expected))]
    add = np.concatenate([drift.missing, readd])
    buckets = index.buckets
    adding = _writes(index, add, with_codes=True) if len(add) else None
    buckets.apply(add=adding, remove=_writes(index, remove) if len(remove) else None)
    buckets.set_meta(entries=len(drift.expected))


def _expected(index: Attachment, batch_size: int) -> tuple[NDArray[np.int64], int]:
    family = index.family
    assert family is not None
    tables, bits = family.num_tables, family.num_bits
    parts, rows = [np.empty((0, 2), np.int64)], 0
    for batch in Pages(index.store).scan(batch_size, payload=False):
        rows += len(batch)
        if not family.trained:
            continue  # an untrained centroid index has no buckets: every stored row is in none
        codes = family.codes(batch.vectors)  # (n, tables)
        buckets = (np.arange(tables, dtype=np.int64)[None, :] << bits) | codes
        parts.append(np.stack([buckets.reshape(-1), np.repeat(batch.ids, tables)], axis=1))
    return np.concatenate(parts), rows


def _found(index: Attachment) -> NDArray[np.int64]:
    assert index.family is not None
    bits = index.family.num_bits
    parts = [np.empty((0, 2), np.int64)]
    for table, code, ids in index.buckets.every_bucket():
        parts.append(np.stack([np.full(len(ids), table << bits | code, np.int64), ids], axis=1))
    return np.concatenate(parts)


def _writes(index: Attachment, entries: NDArray[np.int64], *, with_codes: bool = False) -> Any:
    """(bucket, id) pairs as bucket writes; entries to add carry their ranking codes, made from the stored vectors."""
    family = index.family
    assert family is not None
    bits = family.num_bits
    buckets, ids = entries[:, 0], entries[:, 1]
    marks = None
    if with_codes and family.code_bytes:
        rows = index.store.get(np.unique(ids), payload=False)  # answered in the order asked: ascending
        at = find_sorted(rows.ids, ids)
        buckets, ids, at = buckets[at >= 0], ids[at >= 0], at[at >= 0]  # rows deleted meanwhile: nothing to add
        marks = family.rank_codes(rows.vectors)[at]
    return index.buckets.group_entries(buckets >> bits, buckets & ((1 << bits) - 1), ids, marks)


def _as_entries(pairs: NDArray[np.int64]) -> NDArray[Any]:
    return np.ascontiguousarray(pairs, dtype=np.int64).view(_ENTRY).ravel()


def _sample(entries: NDArray[np.int64]) -> list[int]:
    return np.unique(entries[:, 1])[:SAMPLE].tolist() if len(entries) else []
