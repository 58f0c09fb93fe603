"""Input checks: the whole error contract of the public verbs, in one place.

Every verb validates its entire batch before its first write, so bad input
raises and changes nothing:

- TypeError: wrong kind of value (float or string ids, text that is not str,
  metadata that is not a dict or holds values JSON cannot encode (sets,
  bytes, objects), a vector of strings).
- ValueError: right kind, bad value: wrong shape or dimension, NaN/inf,
  all-zero vectors, duplicate ids in one batch, ids outside the index's id
  width, mismatched lengths, empty batches, top_k < 1, top_p outside (0, 1],
  texts or metadata with lone surrogates (no UTF-8 store can keep them),
  NaN/inf or circular references in metadata (not JSON).

Messages name the argument and show what was expected and what came.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from lshrs.stores.base import Metadata


def as_ids(ids: Any, *, id_bytes: int = 8, name: str = "ids", allow_empty: bool = False) -> NDArray[np.int64]:
    """Integer ids as int64, unique and within the index's id width."""
    try:
        arr = np.asarray(ids)
    except OverflowError:  # a Python int past 64 bits
        arr = np.asarray(ids, dtype=object)
    if arr.dtype.kind in "fO" and isinstance(ids, (list, tuple)):
        # numpy turns ints past int64 into objects, or a mix of signs past it into float64: name the id
        low, high = id_range(8)
        wide = next((v for v in ids if _is_int(v) and not low <= int(v) <= high), None)
        if wide is not None:
            raise ValueError(f"{name}: {wide} is outside the signed 64-bit range ids are kept in")
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-d sequence of integers, got shape {arr.shape}")
    if len(arr) == 0:
        if allow_empty:
            return np.empty(0, np.int64)
        raise ValueError(f"{name}: expected at least one id, got an empty batch")
    if arr.dtype == object:
        bad = next((v for v in arr.tolist() if not _is_int(v)), None)
        if bad is not None:
            raise TypeError(f"{name}: expected integers, got {type(bad).__name__} {bad!r}")
        arr = np.array(arr.tolist(), dtype=np.int64)
    elif arr.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integers, got dtype {arr.dtype}")
    if arr.dtype.kind == "u" and arr.size and int(arr.max()) > np.iinfo(np.int64).max:
        raise ValueError(f"{name}: ids must fit in a signed 64-bit integer")
    arr = arr.astype(np.int64)
    check_width(arr, id_bytes, name=name)
    uniq, counts = np.unique(arr, return_counts=True)
    if len(uniq) != len(arr):
        dups = uniq[counts > 1][:5].tolist()
        raise ValueError(f"{name}: duplicate ids in one batch: {dups}")
    return arr


def id_range(id_bytes: int) -> tuple[int, int]:
    bits = 8 * id_bytes
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def check_width(ids: NDArray[np.int64], id_bytes: int, *, name: str = "ids", hint: str = "") -> None:
    """Refuse ids outside what `id_bytes` signed bytes hold: packed narrower, they wrap onto other ids."""
    lo, hi = id_range(id_bytes)
    if len(ids) and (int(ids.min()) < lo or int(ids.max()) > hi):
        raise ValueError(
            f"{name}: expected ids in [{lo}, {hi}] (id_bytes={id_bytes}), got min {int(ids.min())} "
            f"max {int(ids.max())}{hint}"
        )


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def as_vectors(vectors: Any, *, dim: int | None, name: str = "vectors") -> NDArray[np.float32]:
    """A finite, non-zero float32 matrix of shape (n, dim); one 1-d vector becomes n = 1."""
    try:
        given = np.asarray(vectors)
        with np.errstate(over="ignore"):
            arr = given.astype(np.float32)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}: expected a numeric array of shape (n, d): {exc}") from None
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    expected = f"(n, {dim})" if dim else "(n, d)"
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise ValueError(f"{name}: expected shape {expected}, got {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name}: expected at least one vector, got an empty batch")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"{name}: expected shape {expected}, got {arr.shape}")
    finite = np.isfinite(arr).all(axis=1)
    if not finite.all():
        rows = np.flatnonzero(~finite)[:5].tolist()
        if given.dtype.kind == "f" and np.isfinite(given[rows] if given.ndim == 2 else given).all():
            raise ValueError(f"{name}: values beyond float32's range (about 3.4e38) in rows {rows}")
        raise ValueError(f"{name}: NaN or inf in rows {rows}")
    zero = ~arr.any(axis=1)
    if zero.any():
        raise ValueError(f"{name}: all-zero vectors have no direction, rows {np.flatnonzero(zero)[:5].tolist()}")
    return np.ascontiguousarray(arr)


def as_texts(texts: Any, *, name: str = "texts") -> list[str]:
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, Sequence):
        raise TypeError(f"{name}: expected a list of str, got {type(texts).__name__}")
    if len(texts) == 0:
        raise ValueError(f"{name}: expected at least one text, got an empty batch")
    bad = next((t for t in texts if not isinstance(t, str)), None)
    if bad is not None:
        raise TypeError(f"{name}: expected str items, got {type(bad).__name__}")
    row = next((i for i, t in enumerate(texts) if not _utf8(t)), None)
    if row is not None:
        raise ValueError(f"{name}: item {row} holds a lone surrogate, which UTF-8 stores cannot keep")
    return list(texts)


def _utf8(text: str) -> bool:
    """False for text with lone surrogates (e.g. "\\ud800"): valid Python str, not encodable as UTF-8."""
    if text.isascii():  # O(1) in CPython: most texts stop here
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def as_metadata(metadata: Any, n: int) -> list[Metadata | None] | None:
    if metadata is None:
        return None
    if isinstance(metadata, dict):
        metadata = [metadata]
    if not isinstance(metadata, Sequence):
        raise TypeError(f"metadata: expected a list of dicts, got {type(metadata).__name__}")
    check_length("metadata", len(metadata), n)
    bad = next((m for m in metadata if m is not None and not isinstance(m, dict)), None)
    if bad is not None:
        raise TypeError(f"metadata: expected dict or None items, got {type(bad).__name__}")
    for row, meta in enumerate(metadata):
        if meta is not None:
            _check_json(meta, row)
    return list(metadata)


def _check_json(meta: Metadata, row: int) -> None:
    """Stores keep metadata as JSON: refuse what JSON cannot hold before anything is written.

    Keys must be strings: JSON would turn an int key into a string in every
    store but the in-memory one, so the same document would read back
    differently depending on where it is kept.
    """
    bad_key = next((k for k in meta if not isinstance(k, str)), None)
    if bad_key is not None:
        raise TypeError(
            f"metadata: row {row} has the key {bad_key!r} ({type(bad_key).__name__}); metadata keys are strings "
            "(JSON object keys), e.g. str(key)"
        )
    try:
        encoded = json.dumps(meta, ensure_ascii=False, allow_nan=False)
    except TypeError as exc:
        raise TypeError(f"metadata: row {row} is not JSON-serialisable: {exc}") from None
    except (ValueError, RecursionError) as exc:  # NaN/inf, a circular reference, absurd nesting
        raise ValueError(f"metadata: row {row} is not valid JSON: {exc}") from None
    if not _utf8(encoded):
        raise ValueError(f"metadata: row {row} holds a lone surrogate, which UTF-8 stores cannot keep")


def check_length(name: str, got: int, expected: int) -> None:
    if got != expected:
        raise ValueError(f"{name}: expected {expected} items to match the batch, got {got}")


def check_top(top_k: Any, top_p: Any) -> None:
    if not _is_int(top_k):
        raise TypeError(f"top_k: expected an int, got {type(top_k).__name__}")
    if top_k < 1:
        raise ValueError(f"top_k: expected >= 1, got {top_k}")
    if top_p is None:
        return
    if not isinstance(top_p, numbers.Real) or isinstance(top_p, bool):
        raise TypeError(f"top_p: expected a float in (0, 1], got {type(top_p).__name__}")
    if not (0.0 < float(top_p) <= 1.0) or math.isnan(top_p):
        raise ValueError(f"top_p: expected a value in (0, 1], got {top_p}")


def check_name(name: Any) -> str:
    """Index names become key prefixes, so glob and separator characters are refused."""
    if not isinstance(name, str):
        raise TypeError(f"name: expected str, got {type(name).__name__}")
    if not name or len(name) > 64 or not all(c.isascii() and (c.isalnum() or c in "_-.") for c in name):
        raise ValueError(f"name: expected 1-64 characters from [A-Za-z0-9_.-], got {name!r}")
    return name


def positive(name: str, value: Any) -> int:
    """An int >= 1 (bools refused), e.g. batch sizes and probe counts."""
    return int_at_least(name, value, 1)


def non_negative(name: str, value: Any) -> int:
    return int_at_least(name, value, 0)


def int_at_least(name: str, value: Any, low: int) -> int:
    if not _is_int(value):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name}: expected >= {low}, got {value}")
    return int(value)
