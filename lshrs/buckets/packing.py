"""How bucket writes are grouped and packed into script arguments (part of the buckets package).

Pure numpy over whole batches: entries are sorted by bucket once, and each
distinct bucket becomes one (field, packed ids) pair of its group's key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

DEFAULT_GROUP_BITS = 6
DEFAULT_SMALL_MAX = 64
# Buckets per call of the packed append script: a few milliseconds of server time each.
PACKED_BUCKETS = 2048


@dataclass(frozen=True)
class BucketWrites:
    """(table, code, id) entries sorted by table, code and id: what one write adds or removes."""

    tables: NDArray[np.int64]
    codes: NDArray[np.int64]
    ids: NDArray[np.int64]
    # (n, code_bytes) ranking codes stored beside each id, for families that rank by them; None otherwise
    rank_codes: NDArray[np.uint8] | None = None

    @property
    def entries(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class Layout:
    """How codes map to keys; fixed when the index is created."""

    id_bytes: int = 4
    num_bits: int = 14
    group_bits: int = DEFAULT_GROUP_BITS
    small_max: int = DEFAULT_SMALL_MAX

    code_bytes: int = 0  # ranking code stored after each id (0: ids only)

    @property
    def dtype(self) -> np.dtype:
        """How an id is packed in a bucket: little-endian, `id_bytes` wide."""
        return np.dtype(f"<i{self.id_bytes}")

    @property
    def entry_bytes(self) -> int:
        return self.id_bytes + self.code_bytes

    @property
    def entry_dtype(self) -> np.dtype:
        """One bucket entry: the id, then its ranking code when the index keeps codes."""
        if not self.code_bytes:
            return self.dtype
        return np.dtype([("id", self.dtype), ("code", np.uint8, (self.code_bytes,))])


def server_layout(client: Any) -> tuple[int, int]:
    """(group_bits, small_max) that keep bucket groups in the server's compact hash encoding.

    Read from the server's hash-max-listpack-* (hash-max-ziplist-* before
    Redis 7) settings; the defaults where CONFIG is not allowed (managed Redis).
    """
    try:
        config = client.config_get("hash-max-*")
    except Exception:  # CONFIG disabled or renamed: Redis' own defaults are the best guess
        return DEFAULT_GROUP_BITS, DEFAULT_SMALL_MAX
    if not isinstance(config, dict):  # a cluster answers per node
        return DEFAULT_GROUP_BITS, DEFAULT_SMALL_MAX
    entries = int(config.get("hash-max-listpack-entries") or config.get("hash-max-ziplist-entries") or 128)
    value = int(config.get("hash-max-listpack-value") or config.get("hash-max-ziplist-value") or 64)
    group_bits = min(DEFAULT_GROUP_BITS, max(entries, 1).bit_length() - 1)
    return group_bits, min(DEFAULT_SMALL_MAX, value)


def split_codes(layout: Layout, codes: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(group, field) of each code: a bucket lives in its group's hash under its field."""
    bits = layout.group_bits
    return codes >> bits, codes & ((1 << bits) - 1)


def hash_key_of(prefix: bytes, table: int, group: int) -> bytes:
    """The hash of a bucket group; the braces are its Redis Cluster hash tag."""
    return b"%sb:{%d.%d}" % (prefix, table, group)


def group(
    ids: NDArray[np.int64], codes: NDArray[np.int64], rank_codes: NDArray[np.uint8] | None = None
) -> BucketWrites:
    """Group (id, table) entries by bucket, and buckets by key group.

    Args:
        ids: shape (n,).
        codes: shape (n, tables), from the hasher.
    """
    n, tables = codes.shape
    marks = None if rank_codes is None else np.repeat(rank_codes, tables, axis=0)
    return group_entries(
        np.tile(np.arange(tables, dtype=np.int64), n), codes.reshape(-1), np.repeat(ids, tables), marks
    )


def group_entries(
    table_idx: NDArray[np.int64],
    flat_codes: NDArray[np.int64],
    entry_ids: NDArray[np.int64],
    rank_codes: NDArray[np.uint8] | None = None,
) -> BucketWrites:
    """`group` for arbitrary (table, code, id) entries, e.g. the differences `repair()` fixes."""
    if len(entry_ids) < 2 or bool(np.all(entry_ids[1:] >= entry_ids[:-1])):
        # ids already ascending (a build's scan, a sorted batch): one stable sort by bucket
        order = np.argsort(table_idx << 32 | flat_codes, kind="stable")
    else:
        order = np.lexsort((entry_ids, flat_codes, table_idx))
    marks = None if rank_codes is None else rank_codes[order]
    return BucketWrites(table_idx[order], flat_codes[order], entry_ids[order], marks)


def packed_entries(layout: Layout, writes: BucketWrites, *, with_codes: bool) -> tuple[bytes, int]:
    """The entries as bytes and the width of one: id and ranking code (appends), or the id alone (removals)."""
    if not (with_codes and layout.code_bytes):
        return writes.ids.astype(layout.dtype).tobytes(), layout.id_bytes
    if writes.rank_codes is None or writes.rank_codes.shape[1:] != (layout.code_bytes,):
        raise ValueError(f"bucket entries: this index stores {layout.code_bytes}-byte ranking codes with its ids")
    entries = np.empty(len(writes.ids), dtype=layout.entry_dtype)
    entries["id"] = writes.ids
    entries["code"] = writes.rank_codes
    return entries.tobytes(), layout.entry_bytes


def _bucket_runs(layout: Layout, writes: BucketWrites, width: int) -> tuple[NDArray[Any], ...]:
    """Per distinct bucket: table, group, field, the byte range of its ids in the packed ids, and
    whether it opens a new bucket group (a hash key)."""
    t, c = writes.tables, writes.codes
    starts = np.flatnonzero(np.r_[True, (t[1:] != t[:-1]) | (c[1:] != c[:-1])])
    bounds = np.r_[starts, len(t)] * width
    tables = t[starts]
    grp, field = split_codes(layout, c[starts])
    new_group = np.r_[True, (tables[1:] != tables[:-1]) | (grp[1:] != grp[:-1])]
    return tables, grp, field, bounds[:-1], bounds[1:], new_group


def script_groups(
    layout: Layout, prefix: bytes, writes: BucketWrites, *, with_codes: bool
) -> list[tuple[list[bytes], list[bytes]]]:
    """Per bucket group: the keys and (field, ids) arguments of the per-bucket scripts (removes, clusters)."""
    packed, width = packed_entries(layout, writes, with_codes=with_codes)
    tables, grp, field, lo, hi, new_group = _bucket_runs(layout, writes, width)
    groups: list[tuple[list[bytes], list[bytes]]] = []
    keys: list[bytes] = []
    args: list[bytes] = []
    hash_key = b""
    for first, t, g, f, a, b in zip(*(c.tolist() for c in (new_group, tables, grp, field, lo, hi))):
        if first:
            hash_key = hash_key_of(prefix, t, g)
            keys, args = [hash_key], []
            groups.append((keys, args))
        keys.append(b"%s:%d" % (hash_key, f))
        args += [b"%d" % f, packed[a:b]]
    return groups


def packed_appends(layout: Layout, prefix: bytes, writes: BucketWrites) -> list[list[bytes]]:
    """ARGV of the packed append script, about `PACKED_BUCKETS` buckets per call.

    Seven arguments per call instead of three per bucket: redis-py's
    Python command packing of about a million arguments was half of a
    122k-vector build (benchmarks/results/compare.md).
    """
    packed, width = packed_entries(layout, writes, with_codes=True)
    tables, grp, field, lo, hi, new_group = _bucket_runs(layout, writes, width)
    group_starts = np.flatnonzero(new_group)
    group_sizes = np.diff(np.r_[group_starts, len(tables)])
    lengths = (hi - lo).astype("<u4")
    calls: list[list[bytes]] = []
    first_group = 0
    while first_group < len(group_starts):
        last_group = int(np.searchsorted(group_starts, group_starts[first_group] + PACKED_BUCKETS))
        last_group = max(last_group, first_group + 1)
        a = int(group_starts[first_group])
        b = int(group_starts[last_group]) if last_group < len(group_starts) else len(tables)
        picked = group_starts[first_group:last_group]
        tags = b" ".join(
            b"%d.%d:%d" % row
            for row in zip(tables[picked].tolist(), grp[picked].tolist(), group_sizes[first_group:last_group].tolist())
        )
        calls.append(
            [
                b"%d" % layout.small_max,
                prefix,
                tags,
                field[a:b].astype(np.uint8).tobytes(),
                lengths[a:b].tobytes(),
                packed[int(lo[a]) : int(hi[b - 1])],
                b"%d" % ((int(hi[b - 1]) - int(lo[a])) // width),  # entries, for the counter
            ]
        )
        first_group = last_group
    return calls
