"""Which store an `LSHRS` opens when it is not handed one: a DSN or a file, and the mapping the index keeps.

An index records its store's kind and table mapping at its first write
(`Store.describe`: table and column names, never a DSN, a password or a
path). So the process that created an index over an existing table names the
columns once, and every later process (the CLI, a LangChain or LlamaIndex
store) needs only the index name and where the database is.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lshrs.buckets import Buckets
from lshrs.definition import STORE
from lshrs.stores.base import Store

# The arguments of PostgresStore and SQLiteStore a mapping may name.
MAPPING_KEYS = ("table", "schema", "id_column", "vector_column", "text_column", "metadata_column")
DEFAULT_SQLITE_FILE = "lshrs.sqlite3"


def default_table(name: str) -> str:
    """The default store's table: the index name, made case-proof.

    SQLite table names ignore case, so "Docs" and "docs" would share one
    table; a name with capitals gets its lowercase form plus a digest of the
    original. Lowercase names (every earlier default) keep their table.
    """
    if name == name.lower():
        return name
    return f"{name.lower()}_{hashlib.blake2b(name.encode(), digest_size=4).hexdigest()}"


def open_store(
    client: Any,
    name: str,
    *,
    postgres_dsn: str | None,
    sqlite: str | Path | None,
    data_dir: str | Path,
    mapping: Mapping[str, str | None] | None,
) -> Store:
    """The store of index `name`: in Postgres at `postgres_dsn`, else in SQLite at `sqlite` or under `data_dir`.

    Its table and columns are `mapping`'s where it names them, else the
    mapping the index keeps (when it was kept for a store of the same kind),
    else the defaults: the index name as the table (made case-proof for the
    file under `data_dir`, which many indexes share).
    """
    if postgres_dsn and sqlite:
        raise ValueError("give postgres_dsn or sqlite, not both")
    given = _checked(mapping)
    saved = saved_mapping(client, name)
    kind = "postgres" if postgres_dsn else "sqlite"
    if saved.get("kind") not in (None, kind) and not given:
        raise ValueError(_elsewhere(name, saved))
    if postgres_dsn:
        from lshrs.stores.postgres import PostgresStore

        return PostgresStore(postgres_dsn, **_columns(saved, "postgres", name, given))
    from lshrs.stores.sqlite import SQLiteStore

    path = Path(sqlite) if sqlite else Path(data_dir) / DEFAULT_SQLITE_FILE
    columns = _columns(saved, "sqlite", name if sqlite else default_table(name), given)
    columns.pop("schema", None)
    return SQLiteStore(path, **columns)


def _elsewhere(name: str, saved: dict[str, Any]) -> str:
    """Why the default store is not this index's: it keeps its documents in another kind of store."""
    where = {"postgres": "postgres_dsn= (CLI: --postgres-dsn)", "sqlite": "sqlite= (CLI: --sqlite)"}
    return (
        f"index {name!r} keeps its documents in {saved['kind']} (table {saved.get('table')!r}): "
        f"pass {where.get(saved['kind'], 'store=')}, or a mapping to use another table"
    )


def saved_mapping(client: Any, name: str) -> dict[str, Any]:
    """The store mapping index `name` keeps in Redis; {} for an index not written yet."""
    raw = Buckets(client, name).meta_field(STORE)
    return json.loads(raw) if raw else {}


def _columns(saved: dict[str, Any], kind: str, table: str, given: dict[str, str | None]) -> dict[str, Any]:
    """Table and column arguments: the given mapping over the saved one (of the same kind) over the defaults."""
    found = {k: v for k, v in saved.items() if k in MAPPING_KEYS} if saved.get("kind") == kind else {}
    found.setdefault("table", table)
    return {**found, **given}


def _checked(mapping: Mapping[str, str | None] | None) -> dict[str, str | None]:
    if mapping is None:
        return {}
    if not isinstance(mapping, Mapping):
        raise TypeError(f"mapping: expected a dict of table and column names, got {type(mapping).__name__}")
    unknown = sorted(set(mapping) - set(MAPPING_KEYS))
    if unknown:
        raise ValueError(f"mapping: unknown keys {unknown}; expected some of {list(MAPPING_KEYS)}")
    return dict(mapping)
