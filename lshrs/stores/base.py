"""The store protocol: where documents (id, vector, text, metadata) live.

lshrs keeps only bucket -> ids in Redis; everything else is read from a store.
Any object with these methods works; the shipped backends are one module each.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

Metadata = dict[str, Any]


@dataclass
class Rows:
    """A batch of documents; `vectors` row i belongs to `ids[i]`.

    `texts` and `metadata` are None when the caller did not ask for them
    (vector-only reads for reranking) and hold None entries for rows that
    have no text or metadata.
    """

    ids: NDArray[np.int64]
    vectors: NDArray[np.float32]
    texts: list[str | None] | None = None
    metadata: list[Metadata | None] | None = None

    def __len__(self) -> int:
        return len(self.ids)


def empty_rows(dim: int) -> Rows:
    """A zero-row batch of the given dimension."""
    return Rows(np.empty(0, np.int64), np.empty((0, dim), np.float32), [], [])


def find_sorted(sorted_ids: NDArray[np.int64], ids: NDArray[np.int64]) -> NDArray[np.int64]:
    """Position of each of `ids` in the ascending array `sorted_ids`, -1 where absent."""
    if len(sorted_ids) == 0:
        return np.full(len(ids), -1, np.int64)
    pos = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)
    return np.where(sorted_ids[pos] == ids, pos, -1)


def in_requested_order(requested: NDArray[np.int64], found: Rows) -> Rows:
    """Reorder rows a backend returned in any order to follow `requested`.

    Unknown ids are dropped; an id asked for twice comes back twice.
    """
    if len(found) == 0:
        return Rows(found.ids, found.vectors, found.texts, found.metadata)
    order = np.argsort(found.ids, kind="stable")
    pos = find_sorted(found.ids[order], requested)
    take = order[pos[pos >= 0]]
    pick = take.tolist()
    return Rows(
        found.ids[take],
        found.vectors[take],
        None if found.texts is None else [found.texts[i] for i in pick],
        None if found.metadata is None else [found.metadata[i] for i in pick],
    )


# The store protocol in one place: what every store must have, and what lshrs uses when it is there.
REQUIRED_METHODS = ("put", "get", "delete", "scan", "count", "dim")
OPTIONAL_METHODS = {
    "find_where": "find_where(where, limit=None) -> ids (at most limit) whose metadata passes a parsed filter "
    "(lshrs.where), answered in the database; None when its SQL cannot express that filter exactly",
    "keyword_search": "keyword_search(text, limit) -> (ids, scores) of the best keyword matches for the words "
    "of text, best first: what hybrid search (query(alpha=...)) fuses with the vector search",
    "check": "check(texts, metadata): refuse what the store cannot hold, before any write of a batch",
    "check_ids": "check_ids(ids): refuse ids the store's id column cannot hold, before any write of a batch",
    "describe": "describe() -> the store's kind and table mapping, never credentials: kept with the index",
    "aget": "async twin of get",
    "aput": "async twin of put",
    "adelete": "async twin of delete",
    "page": "page(after, limit, payload) -> the next page of a build or an exact scan, in one query",
    "apage": "apage(after, limit, payload) -> the next page of an exact scan, async",
    "afind_where": "async twin of find_where",
    "aclose": "close the store's async connection",
}


@dataclass(frozen=True)
class Capabilities:
    """Which optional parts of the protocol a store has, found once per store object."""

    find_where: bool
    check: bool
    check_ids: bool
    scan_payload: bool  # scan() takes payload=: a store written before the flag reads everything


def capabilities(store: Any) -> Capabilities:
    """The store's optional methods; TypeError naming every required method it lacks."""
    missing = [m for m in REQUIRED_METHODS if not callable(getattr(store, m, None))]
    if missing:
        raise TypeError(f"store: {type(store).__name__} lacks the store method(s) {', '.join(missing)}")
    return Capabilities(
        find_where=callable(getattr(store, "find_where", None)),
        check=callable(getattr(store, "check", None)),
        check_ids=callable(getattr(store, "check_ids", None)),
        scan_payload="payload" in inspect.signature(store.scan).parameters,
    )


class Store(Protocol):
    """What `LSHRS` needs from a document store: the methods below (`REQUIRED_METHODS`).

    Optional methods, used when present, are listed with what they do in
    `OPTIONAL_METHODS`; without the async twins the async verbs run the
    blocking method in a worker thread. `capabilities` checks a store
    against this protocol when an `LSHRS` is made.
    """

    def put(
        self,
        ids: NDArray[np.int64],
        vectors: NDArray[np.float32],
        texts: Sequence[str | None] | None = None,
        metadata: Sequence[Metadata | None] | None = None,
    ) -> None:
        """Insert or replace these rows (replace = the old row is gone)."""

    def get(self, ids: NDArray[np.int64], *, payload: bool = True) -> Rows:
        """Rows for the ids that exist, in the order asked; unknown ids are left out.

        With ``payload=False`` only ids and vectors are read (the rerank path).
        """

    def delete(self, ids: NDArray[np.int64]) -> int:
        """Remove rows; returns how many existed."""

    def scan(self, *, batch_size: int = 10_000, after: int | None = None, payload: bool = True) -> Iterator[Rows]:
        """All rows in ascending id order, batch by batch, starting past `after`.

        With ``payload=False`` only ids and vectors are read (exact scans
        that need no metadata); a store may ignore it and read everything.

        Ascending order is what makes `LSHRS.index()` resumable: the last id of
        a finished batch is the checkpoint.
        """

    def count(self) -> int:
        """Number of rows."""

    def dim(self) -> int | None:
        """Vector dimension of the stored rows, None while the store is empty."""
