"""Helpers shared by the SQL stores: identifier quoting and metadata encoding."""

from __future__ import annotations

import json

from lshrs.stores.base import Metadata


def quote_identifier(name: str) -> str:
    """Quote an SQL identifier (SQLite and Postgres share the rule); values are always bound."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise ValueError(f"identifier: expected a non-empty string without NUL, got {name!r}")
    return '"' + name.replace('"', '""') + '"'


def dump_metadata(meta: Metadata | None) -> str | None:
    return None if meta is None else json.dumps(meta, ensure_ascii=False)


def load_metadata(raw: str | bytes | None) -> Metadata | None:
    return None if raw is None else json.loads(raw)
