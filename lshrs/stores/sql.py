"""Helpers shared by the SQL stores: identifier quoting and metadata encoding."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from numpy.typing import NDArray

from lshrs.stores.base import Metadata


def check_identifier(name: Any, role: str = "identifier") -> str:
    """A table or column name either database can hold: a non-empty str, no NUL, valid UTF-8."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise ValueError(f"{role}: expected a non-empty string without NUL, got {name!r}")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{role}: lone surrogate in {name!r}, not valid UTF-8") from None
    return name


def quote_identifier(name: str) -> str:
    """Quote an SQL identifier (SQLite and Postgres share the rule); values are always bound."""
    return '"' + check_identifier(name).replace('"', '""') + '"'


def dump_metadata(meta: Metadata | None) -> str | None:
    return None if meta is None else json.dumps(meta, ensure_ascii=False)


def load_metadata(raw: str | bytes | None) -> Metadata | None:
    return None if raw is None else json.loads(raw)


def ranked(rows: list[tuple[Any, ...]]) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """(ids, scores) of a keyword search's (id, score) result rows, in their order."""
    return np.array([r[0] for r in rows], np.int64), np.array([float(r[1]) for r in rows], np.float64)
