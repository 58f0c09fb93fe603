"""Redis store: vectors and text in Redis hashes, next to (or apart from) the buckets.

It exists to answer "is it faster to keep the vectors in Redis too?". Each
document is a hash ``lshrs-docs:{name}:{id}`` with fields ``v`` (float32
bytes), ``t`` (text) and ``m`` (JSON metadata). A sorted set of ids, ordered
lexicographically on an offset, zero-padded form of each id, gives the
ascending scan `LSHRS.index()` needs without float-precision limits on ids.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from lshrs.buckets import store_prefix
from lshrs.inputs import check_name
from lshrs.keywords import StaleAware
from lshrs.stores.base import Metadata, Rows, empty_rows
from lshrs.stores.sql import dump_metadata

_OFFSET = 1 << 63


def _member(i: int) -> bytes:
    return b"%020d" % (i + _OFFSET)


class RedisStore:
    """Documents in Redis hashes.

    Args:
        client: a redis-py client (may be the same one the index uses).
        name: key namespace ``lshrs-docs:{name}:``, apart from the index's keys so
            that `LSHRS.clear()` drops the buckets but never the documents.
    """

    def __init__(self, client: Any, *, name: str = "default") -> None:
        self.client = client
        self._prefix = store_prefix(check_name(name))
        self._ids_key = self._prefix + b"ids"
        # bumped by every put and delete, from any process: a keyword index older than it is rebuilt
        self._version_key = self._prefix + b"version"
        self._keywords = StaleAware()

    def _key(self, i: int) -> bytes:
        return b"%s%d" % (self._prefix, i)

    def put(
        self,
        ids: NDArray[np.int64],
        vectors: NDArray[np.float32],
        texts: Sequence[str | None] | None = None,
        metadata: Sequence[Metadata | None] | None = None,
    ) -> None:
        ids_list = np.asarray(ids, np.int64).tolist()
        blobs = np.ascontiguousarray(vectors, dtype="<f4")
        pipe = self.client.pipeline(transaction=False)
        for row, i in enumerate(ids_list):
            key = self._key(i)
            pipe.delete(key)
            fields: dict[str, bytes | str] = {"v": blobs[row].tobytes()}
            text = texts[row] if texts is not None else None
            meta = dump_metadata(metadata[row]) if metadata is not None else None
            if text is not None:
                fields["t"] = text
            if meta is not None:
                fields["m"] = meta
            pipe.hset(key, mapping=fields)
        pipe.zadd(self._ids_key, {_member(i): 0 for i in ids_list})
        pipe.incr(self._version_key)
        pipe.execute()

    def get(self, ids: NDArray[np.int64], *, payload: bool = True) -> Rows:
        ids = np.asarray(ids, np.int64)
        fields = ("v", "t", "m") if payload else ("v",)
        pipe = self.client.pipeline(transaction=False)
        for i in ids.tolist():
            pipe.hmget(self._key(i), fields)
        replies = pipe.execute()
        found = [k for k, r in enumerate(replies) if r[0] is not None]
        if not found:
            return empty_rows(0)
        vectors = np.frombuffer(b"".join(replies[k][0] for k in found), dtype="<f4").reshape(len(found), -1)
        return Rows(
            ids[found],
            vectors.astype(np.float32),
            [None if replies[k][1] is None else replies[k][1].decode() for k in found] if payload else None,
            [None if replies[k][2] is None else json.loads(replies[k][2]) for k in found] if payload else None,
        )

    def delete(self, ids: NDArray[np.int64]) -> int:
        ids_list = np.unique(np.asarray(ids, np.int64)).tolist()
        if not ids_list:
            return 0
        pipe = self.client.pipeline(transaction=False)
        for i in ids_list:
            pipe.unlink(self._key(i))
        pipe.zrem(self._ids_key, *[_member(i) for i in ids_list])
        pipe.incr(self._version_key)
        return int(sum(pipe.execute()[:-2]))

    def scan(self, *, batch_size: int = 10_000, after: int | None = None, payload: bool = True) -> Iterator[Rows]:
        for ids in self._id_pages(batch_size, after):
            yield self.get(np.array(ids, np.int64), payload=payload)

    def _id_pages(self, batch_size: int, after: int | None = None) -> Iterator[list[int]]:
        """Every stored id in ascending order, `batch_size` at a time, starting past `after`."""
        low = b"-" if after is None else b"(" + _member(after)
        while members := self.client.zrangebylex(self._ids_key, low, b"+", start=0, num=batch_size):
            yield [int(m) - _OFFSET for m in members]
            low = b"(" + members[-1]

    def keyword_search(self, text: str, limit: int) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """The `limit` best BM25 matches for `text`, best first, and their scores.

        Redis has no text index here (lshrs needs no Redis modules), so the
        texts are read once into an in-process BM25 (lshrs.keywords), again
        after any process wrote to the store.
        """
        return self._keywords.search(self.client.get(self._version_key), self._texts, text, limit)

    def _texts(self, batch_size: int = 10_000) -> Iterator[tuple[int, str | None]]:
        """(id, text) of every row: only the text field, not the vectors a scan would read."""
        for ids in self._id_pages(batch_size):
            pipe = self.client.pipeline(transaction=False)
            for i in ids:
                pipe.hget(self._key(i), "t")
            for i, text in zip(ids, pipe.execute()):
                yield i, None if text is None else text.decode()

    def count(self) -> int:
        return int(self.client.zcard(self._ids_key))

    def dim(self) -> int | None:
        first = self.client.zrange(self._ids_key, 0, 0)
        if not first:
            return None
        blob = self.client.hget(self._key(int(first[0]) - _OFFSET), "v")
        return None if blob is None else len(blob) // 4
