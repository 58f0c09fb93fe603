"""The Redis side of an index: the only module that knows key names and commands.

Layout, everything under ``lshrs:{name}:`` so indexes share a Redis safely:

- ``lshrs:{name}:meta`` — a hash: index parameters, format version, the
  hyperplanes (raw float32), the entry counter and the build checkpoint.
- ``lshrs:{name}:b:{table}:{code}`` — one string per bucket holding its member
  ids packed as little-endian integers of ``id_bytes`` each.

Packed strings were chosen over sets by measurement (see README, "Redis
memory"): a set of integers leaves the compact intset encoding past 512
members and then costs tens of bytes per member, while a string costs exactly
``id_bytes`` per member plus one key per bucket, and a whole bucket parses
with one ``np.frombuffer``. Appends are O(1); removals go through a one-key
Lua script, so every command touches a single key and the layout works
unchanged on Redis Cluster, where buckets spread over shards by key hash.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

log = logging.getLogger("lshrs")

FORMAT_VERSION = 1
_SCAN_COUNT = 1000

# One key: create the meta hash only if it does not exist yet, so two
# processes creating the same index race safely (the loser reads the winner's).
_CREATE_META = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""

# One key: drop every occurrence of the given fixed-width ids from a bucket.
# ARGV[1] = packed ids to drop, ARGV[2] = width in bytes. Returns how many
# entries were removed. Chunks are compared at aligned offsets only.
_REMOVE_IDS = """
local blob = redis.call('GET', KEYS[1])
if not blob then return 0 end
local width = tonumber(ARGV[2])
local drop = {}
local ids = ARGV[1]
for i = 1, #ids, width do drop[string.sub(ids, i, i + width - 1)] = true end
local keep = {}
local removed = 0
for i = 1, #blob, width do
  local chunk = string.sub(blob, i, i + width - 1)
  if drop[chunk] then removed = removed + 1 else keep[#keep + 1] = chunk end
end
if removed == 0 then return 0 end
if #keep == 0 then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], table.concat(keep)) end
return removed
"""


@dataclass(frozen=True)
class BucketWrites:
    """Bucket keys with the packed ids to add to (or drop from) each."""

    keys: list[bytes]
    payloads: list[bytes]
    entries: int


class Buckets:
    """Bucket storage for one named index on one Redis (or Redis Cluster)."""

    def __init__(self, client: Any, name: str, *, id_bytes: int = 8) -> None:
        self.client = client
        self.name = name
        self.prefix = f"lshrs:{name}:".encode()
        self.meta_key = self.prefix + b"meta"
        self.id_bytes = id_bytes
        self._dtype = np.dtype(f"<i{id_bytes}")
        self._create = client.register_script(_CREATE_META)
        self._remove = client.register_script(_REMOVE_IDS)

    # -- metadata ---------------------------------------------------------

    def read_meta(self) -> dict[str, bytes]:
        """The meta hash as str -> raw bytes, empty when the index does not exist."""
        raw = self.client.hgetall(self.meta_key)
        return {k.decode(): v for k, v in raw.items()}

    def create_meta(self, fields: Mapping[str, bytes | str | int]) -> bool:
        """Create the meta hash unless it exists; True when this call created it."""
        argv: list[bytes | str | int] = []
        for key, value in fields.items():
            argv += [key, value]
        return bool(self._create(keys=[self.meta_key], args=argv))

    def set_meta(self, **fields: bytes | str | int) -> None:
        self.client.hset(self.meta_key, mapping=fields)

    def entry_count(self) -> int:
        """Bucket entries written minus removed (each indexed id has one per table)."""
        value = self.client.hget(self.meta_key, "entries")
        return int(value or 0)

    # -- writes -----------------------------------------------------------

    def group(self, ids: NDArray[np.int64], codes: NDArray[np.int64]) -> BucketWrites:
        """Group (id, table) entries by bucket.

        Args:
            ids: shape (n,).
            codes: shape (n, tables), from the hasher.
        """
        n, tables = codes.shape
        table_idx = np.tile(np.arange(tables, dtype=np.int64), n)
        flat_codes = codes.reshape(-1)
        flat_ids = np.repeat(ids, tables)
        order = np.lexsort((flat_ids, flat_codes, table_idx))
        t_sorted, c_sorted = table_idx[order], flat_codes[order]
        packed = flat_ids[order].astype(self._dtype).tobytes()
        starts = np.flatnonzero(np.r_[True, (t_sorted[1:] != t_sorted[:-1]) | (c_sorted[1:] != c_sorted[:-1])])
        ends = np.r_[starts[1:], len(order)] * self.id_bytes
        keys = self.keys_for(t_sorted[starts], c_sorted[starts])
        payloads = [packed[s:e] for s, e in zip((starts * self.id_bytes).tolist(), ends.tolist())]
        return BucketWrites(keys, payloads, entries=n * tables)

    def apply(self, add: BucketWrites | None = None, remove: BucketWrites | None = None) -> int:
        """Remove then append entries in one pipeline; returns entries removed.

        Removal runs first so an id re-added to the bucket it already sits in
        ends up there exactly once.
        """
        pipe = self.client.pipeline(transaction=False)
        n_remove = 0
        if remove is not None:
            for key, payload in zip(remove.keys, remove.payloads):
                self._remove(keys=[key], args=[payload, self.id_bytes], client=pipe)
            n_remove = len(remove.keys)
        if add is not None:
            for key, payload in zip(add.keys, add.payloads):
                pipe.append(key, payload)
            # the added count is known up front, so it rides in the same pipeline
            pipe.hincrby(self.meta_key, "entries", add.entries)
        results = pipe.execute()
        removed = int(sum(results[:n_remove]))
        if removed:
            self.client.hincrby(self.meta_key, "entries", -removed)
        return removed

    # -- reads ------------------------------------------------------------

    def fetch(self, keys: list[bytes]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Read buckets in one round trip (per shard on a cluster).

        Returns:
            The concatenated member ids of all keys, and each key's member count.
        """
        if not keys:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        if hasattr(self.client, "mget_nonatomic"):
            values = self.client.mget_nonatomic(keys)
        else:
            values = self.client.mget(keys)
        blobs = [v or b"" for v in values]
        sizes = np.fromiter(map(len, blobs), dtype=np.int64, count=len(blobs)) // self.id_bytes
        ids = np.frombuffer(b"".join(blobs), dtype=self._dtype).astype(np.int64)
        return ids, sizes

    def bucket_key(self, table: int, code: int) -> bytes:
        return b"%sb:%d:%d" % (self.prefix, table, code)

    def keys_for(self, tables: NDArray[np.int64], codes: NDArray[np.int64]) -> list[bytes]:
        """Bucket keys of parallel (table, code) arrays."""
        return [self.bucket_key(t, c) for t, c in zip(tables.tolist(), codes.tolist())]

    # -- housekeeping -----------------------------------------------------

    def scan_buckets(self) -> Iterator[bytes]:
        """Every bucket key of this index (SCAN, so only for stats and clear)."""
        yield from self.client.scan_iter(match=self.prefix + b"b:*", count=_SCAN_COUNT)

    def clear(self) -> int:
        """Unlink every key of this index; returns how many were removed."""
        removed = 0
        batch: list[bytes] = []
        for key in self.client.scan_iter(match=self.prefix + b"*", count=_SCAN_COUNT):
            batch.append(key)
            if len(batch) >= _SCAN_COUNT:
                removed += self._unlink(batch)
                batch = []
        removed += self._unlink(batch)
        return removed

    def _unlink(self, keys: list[bytes]) -> int:
        if not keys:
            return 0
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.unlink(key)
        return int(sum(pipe.execute()))

    def bucket_sizes(self) -> NDArray[np.int64]:
        """Member count of every bucket (one STRLEN per bucket, pipelined)."""
        sizes: list[int] = []
        batch: list[bytes] = []
        for key in self.scan_buckets():
            batch.append(key)
            if len(batch) >= _SCAN_COUNT:
                sizes += self._strlens(batch)
                batch = []
        sizes += self._strlens(batch)
        return np.array(sizes, dtype=np.int64) // self.id_bytes

    def _strlens(self, keys: list[bytes]) -> list[int]:
        if not keys:
            return []
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.strlen(key)
        return [int(v) for v in pipe.execute()]
