"""What reads or removes every key of an index (part of the buckets package): SCAN-based housekeeping.

verify(), repair(), stats(), clear() and a rebuild walk the whole index;
queries and writes never do. A mixin of `Buckets`, kept apart so the per-query
and per-write paths read on their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.typing import NDArray

from lshrs.buckets.packing import Layout

_SCAN_COUNT = 1000


class Housekeeping:
    """Full scans of one index's keys; `Buckets` provides the client, prefix and layout."""

    client: Any
    prefix: bytes
    layout: Layout
    _cluster: bool

    def _ids_of(self, blob: bytes) -> NDArray[np.int64]:
        found = np.frombuffer(blob, dtype=self.layout.entry_dtype)
        return (found["id"] if self.layout.code_bytes else found).astype(np.int64)

    def every_bucket(self) -> Iterator[tuple[int, int, NDArray[np.int64]]]:
        """Every bucket as (table, code, ids): a full SCAN, for checks and repair."""
        bits = self.layout.group_bits
        for key in self._scan(self.prefix + b"b:*"):
            tag, _, field = key[len(self.prefix) + 3 :].partition(b"}:")
            table, group = (int(x) for x in tag.strip(b"{}").split(b"."))
            if field:
                value = self.client.get(key)
                values = {int(field): value} if value else {}
            else:
                values = {int(f): v for f, v in self.client.hgetall(key).items()}
            for f, blob in values.items():
                yield table, group << bits | f, self._ids_of(blob)

    def clear(self) -> int:
        """Unlink every key of this index; returns how many were removed."""
        return self._unlink_matching(self.prefix + b"*")

    def drop_buckets(self) -> int:
        """Unlink the bucket keys only: the meta hash, locks and job checkpoints stay."""
        return self._unlink_matching(self.prefix + b"b:*")

    def _unlink_matching(self, match: bytes) -> int:
        removed = 0
        batch: list[bytes] = []
        for key in self._scan(match):
            batch.append(key)
            if len(batch) >= _SCAN_COUNT:
                removed += self._unlink(batch)
                batch = []
        removed += self._unlink(batch)
        return removed

    def _scan(self, match: bytes) -> Iterator[bytes]:
        yield from self.client.scan_iter(match=match, count=_SCAN_COUNT)

    def _unlink(self, keys: list[bytes]) -> int:
        if not keys:
            return 0
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.unlink(key)
        return int(sum(pipe.execute()))

    def collect_script_garbage(self) -> None:
        """Free the Lua heap a bulk write leaves behind (standalone Redis).

        The packed writes hand Lua megabytes of arguments; Redis collects that
        garbage only a step per script call, so after a build the server's Lua
        heap (INFO used_memory_vm_eval, outside used_memory) held 54 B per
        vector of it after a 122k-vector centroid build, until later scripts ran.
        """
        if not self._cluster:
            self.client.execute_command("EVAL", "collectgarbage('collect') return 0", 0)

    def memory_usage(self) -> int:
        """Redis bytes of the bucket keys (MEMORY USAGE); raises redis.ResponseError where MEMORY is refused."""
        total = 0
        batch: list[bytes] = []
        for key in [*self._scan(self.prefix + b"b:*"), None]:
            if key is not None:
                batch.append(key)
            if batch and (key is None or len(batch) >= _SCAN_COUNT):
                pipe = self.client.pipeline(transaction=False)
                for one in batch:
                    pipe.memory_usage(one, samples=0)
                total += sum(int(v or 0) for v in pipe.execute())
                batch = []
        return total

    def bucket_sizes(self) -> NDArray[np.int64]:
        """Member count of every bucket (pipelined HVALS / STRLEN over a SCAN)."""
        sizes: list[int] = []
        batch: list[bytes] = []
        for key in self._scan(self.prefix + b"b:*"):
            batch.append(key)
            if len(batch) >= _SCAN_COUNT:
                sizes += self._lengths(batch)
                batch = []
        sizes += self._lengths(batch)
        return np.array(sizes, dtype=np.int64) // self.layout.entry_bytes

    def _lengths(self, keys: list[bytes]) -> list[int]:
        if not keys:
            return []
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            if key.endswith(b"}"):
                pipe.hvals(key)
            else:
                pipe.strlen(key)
        lengths: list[int] = []
        for value in pipe.execute():
            lengths += [len(v) for v in value] if isinstance(value, list) else [int(value)]
        return lengths
