"""String document ids, as LangChain and LlamaIndex use them, to the integer keys of store and buckets.

A key is 63 bits of a BLAKE2b digest of the id: stable across processes and
machines, so any process maps an id to the same row without a lookup table.
The string itself is stored in the row's metadata under `ID_FIELD`, so it
comes back exactly, and a write whose key is already held by another id
(odds about n^2 / 2^64, one in a million at 6 million documents) is refused
instead of overwriting.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from lshrs.stores.base import Rows

ID_FIELD = "_lshrs_id"
ID_BYTES = 8  # keys use the full int64 range: an index for string ids needs id_bytes=8
_MASK = (1 << 63) - 1


def key_for(doc_id: str) -> int:
    """The integer key of one string id."""
    if not isinstance(doc_id, str):
        raise TypeError(f"ids: expected str, got {type(doc_id).__name__} {doc_id!r}")
    digest = hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") & _MASK


def keys_for(doc_ids: Sequence[str]) -> NDArray[np.int64]:
    """Integer keys of a batch of string ids; duplicates in one batch are refused."""
    seen: set[str] = set()
    dups = [i for i in doc_ids if i in seen or seen.add(i)]  # type: ignore[func-returns-value]
    if dups:
        raise ValueError(f"ids: duplicate ids in one batch: {dups[:5]}")
    return np.array([key_for(i) for i in doc_ids], dtype=np.int64)


def check_free(lsh: Any, keys: NDArray[np.int64], doc_ids: Sequence[str]) -> None:
    """Raise if a key is already held by a different string id (a hash collision)."""
    check_stored(lsh.get(keys, payload=True), keys, doc_ids)


def check_stored(rows: Rows, keys: NDArray[np.int64], doc_ids: Sequence[str]) -> None:
    """`check_free` on rows already read (the async callers read them with `aget`)."""
    wanted = dict(zip(keys.tolist(), doc_ids))
    for key, meta in zip(rows.ids.tolist(), rows.metadata or []):
        held = (meta or {}).get(ID_FIELD)
        if held is not None and held != wanted[key]:
            raise ValueError(f"ids: {wanted[key]!r} maps to the key of stored id {held!r}; choose another id")


def split_metadata(meta: dict[str, Any] | None) -> tuple[str | None, dict[str, Any]]:
    """(the stored string id, the user's own metadata) of a stored row."""
    rest = dict(meta or {})
    return rest.pop(ID_FIELD, None), rest


def with_id(meta: dict[str, Any] | None, doc_id: str) -> dict[str, Any]:
    """The user's metadata plus the string id, refusing metadata that already uses the reserved key."""
    meta = dict(meta or {})
    if ID_FIELD in meta:
        raise ValueError(f"metadata: the key {ID_FIELD!r} is reserved for the document id")
    meta[ID_FIELD] = doc_id
    return meta
