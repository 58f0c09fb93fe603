"""verify() and repair(): the buckets against a fresh re-hash of the store.

The store is the truth (it is written first); the buckets should hold each
stored id exactly once per table, in the bucket its stored vector hashes to.
Drift comes from crashes between the two writes, from writers that bypass
lshrs, or from a Redis restored from an older snapshot. Both functions read
every bucket and every stored vector: about 16 bytes of memory per (vector,
table) entry on each side, so a 6.4M-vector, 12-table index needs ~2.5 GB.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from lshrs.search import Pages

if TYPE_CHECKING:
    from lshrs.index import LSHRS

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


def measure(lsh: LSHRS) -> Drift:
    expected, rows = _expected(lsh)
    found = _found(lsh)
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


def report(lsh: LSHRS, drift: Drift) -> dict[str, Any]:
    counter = lsh.buckets.entry_count()
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


def fix(lsh: LSHRS, drift: Drift) -> None:
    """Drop stale and repeated entries, add missing ones (repeated expected ones once), reset the counter."""
    remove = np.concatenate([drift.stale, drift.repeated])
    readd = drift.repeated[np.isin(_as_entries(drift.repeated), _as_entries(drift.expected))]
    add = np.concatenate([drift.missing, readd])
    lsh.buckets.apply(add=_writes(lsh, add) if len(add) else None, remove=_writes(lsh, remove) if len(remove) else None)
    lsh.buckets.set_meta(entries=len(drift.expected))


def _expected(lsh: LSHRS) -> tuple[NDArray[np.int64], int]:
    assert lsh.hasher is not None
    tables, bits = lsh.hasher.num_tables, lsh.hasher.num_bits
    parts, rows = [np.empty((0, 2), np.int64)], 0
    for batch in Pages(lsh.store).scan(lsh.batch_size, payload=False):
        codes = lsh.hasher.codes(batch.vectors)  # (n, tables)
        buckets = (np.arange(tables, dtype=np.int64)[None, :] << bits) | codes
        parts.append(np.stack([buckets.reshape(-1), np.repeat(batch.ids, tables)], axis=1))
        rows += len(batch)
    return np.concatenate(parts), rows


def _found(lsh: LSHRS) -> NDArray[np.int64]:
    assert lsh.hasher is not None
    bits = lsh.hasher.num_bits
    parts = [np.empty((0, 2), np.int64)]
    for table, code, ids in lsh.buckets.members():
        parts.append(np.stack([np.full(len(ids), table << bits | code, np.int64), ids], axis=1))
    return np.concatenate(parts)


def _writes(lsh: LSHRS, entries: NDArray[np.int64]) -> Any:
    assert lsh.hasher is not None
    bits = lsh.hasher.num_bits
    buckets, ids = entries[:, 0], entries[:, 1]
    return lsh.buckets.group_entries(buckets >> bits, buckets & ((1 << bits) - 1), ids)


def _as_entries(pairs: NDArray[np.int64]) -> NDArray[Any]:
    return np.ascontiguousarray(pairs, dtype=np.int64).view(_ENTRY).ravel()


def _sample(entries: NDArray[np.int64]) -> list[int]:
    return np.unique(entries[:, 1])[:SAMPLE].tolist() if len(entries) else []
