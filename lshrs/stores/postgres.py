"""Postgres store (psycopg 3): maps onto an existing table by column names.

The vector column may be pgvector ``vector``, ``real[]``, ``double precision[]``
or ``bytea`` (little-endian float32). Everything moves in Postgres' binary
format: reads return each vector's raw bytes and a whole batch is parsed with
one numpy view; writes build a binary COPY stream into a temporary table and
update or insert the target rows from it in one transaction. Identifiers are quoted,
values are always bound or sent through COPY.

The ``a``-prefixed methods (used by `LSHRS`'s async verbs) run the same
statements on a ``psycopg.AsyncConnection``, one per event loop, opened on
first use with the same connection parameters.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import struct
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
import psycopg
from numpy.typing import NDArray
from psycopg import sql
from psycopg.adapt import Dumper
from psycopg.pq import Format

from lshrs.inputs import id_range
from lshrs.keywords import terms
from lshrs.stores import pg_keywords, pg_where
from lshrs.stores.base import Metadata, Rows, empty_rows, in_requested_order
from lshrs.stores.sql import check_identifier, dump_metadata, ranked
from lshrs.where import Where

_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = struct.pack(">h", -1)
_ID_FORMATS = {"bigint": ">q", "integer": ">i", "smallint": ">h"}
_JSON_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")  # an escaped NUL, not an escaped backslash + "u0000"
_FLOAT_OIDS = {"real[]": (700, ">f4"), "double precision[]": (701, ">f8")}
# NAMEDATALEN - 1 of stock builds (SHOW max_identifier_length): Postgres silently
# truncates longer names, so two long table names could map to one table.
_MAX_IDENTIFIER_BYTES = 63


log = logging.getLogger("lshrs")
T = TypeVar("T")


class _IdArray:
    """int64 ids bound as one binary bigint[] parameter (`_IdArrayDumper`), not a list psycopg checks item by item."""

    def __init__(self, ids: NDArray[np.int64]) -> None:
        self.ids = ids


class _IdArrayDumper(Dumper):
    """A bigint[] in Postgres' binary array format, built by numpy.

    Dumping 100 ids from a Python list took a fifth of a 100-row read. A
    bigint[] also compares with integer and smallint columns through their
    index (btree's cross-type integer operators).
    """

    format = Format.BINARY
    oid = psycopg.postgres.types["int8"].array_oid

    def dump(self, obj: _IdArray) -> bytes:
        items = np.empty(len(obj.ids), dtype=[("length", ">i4"), ("value", ">i8")])
        items["length"], items["value"] = 8, obj.ids
        # one dimension, no NULLs, element type int8, its length, lower bound 1
        header = struct.pack(">iiiii", 1, 0, psycopg.postgres.types["int8"].oid, len(obj.ids), 1)
        return header + items.tobytes()


def _reconnecting(method: Callable[..., T]) -> Callable[..., T]:
    """A store method that connects again and retries once when the server dropped the connection.

    Every such method is idempotent (put upserts, delete of a deleted id does
    nothing, the rest read), so running it again after a failure that may or
    may not have reached the server changes nothing twice.
    """

    @functools.wraps(method)
    def wrapper(self: PostgresStore, *args: Any, **kwargs: Any) -> T:
        self._revive()
        try:
            return method(self, *args, **kwargs)
        except psycopg.OperationalError:
            if not self._revive():
                raise
            return method(self, *args, **kwargs)

    return wrapper


# Column names taken by default for the optional roles: a table that lacks them simply has no such column.
_OPTIONAL_DEFAULTS = {"text": "text", "metadata": "metadata"}


class PostgresStore:
    """Documents in a Postgres table.

    Args:
        conninfo: a connection string, or an open ``psycopg.Connection``.
        table: table name (optionally ``schema.table`` via `schema`).
        id_column, vector_column, text_column, metadata_column: column names;
            `text_column` and `metadata_column` may be None if the table has none.
        create: create the table when missing, with a `vector_type` column.
        vector_type: column type for a created table: ``"bytea"``, ``"real[]"``
            or ``"vector"`` (needs the pgvector extension).
        text_search_config: the Postgres text search configuration (language) of
            keyword search; its GIN index is created on the first keyword search.
    """

    def __init__(
        self,
        conninfo: str | psycopg.Connection,
        *,
        table: str = "documents",
        schema: str | None = None,
        id_column: str = "id",
        vector_column: str = "embedding",
        text_column: str | None = "text",
        metadata_column: str | None = "metadata",
        create: bool = True,
        vector_type: str = "bytea",
        text_search_config: str = "english",
    ) -> None:
        names = {"id": id_column, "vector": vector_column, "text": text_column, "metadata": metadata_column}
        optional = {"schema": schema, "text_column": text_column, "metadata_column": metadata_column}
        required = {"table": table, "id_column": id_column, "vector_column": vector_column}
        _check_identifiers({**required, **{k: v for k, v in optional.items() if v}})  # '' means none, as below
        if isinstance(conninfo, psycopg.Connection):
            if not conninfo.autocommit:
                # psycopg's default mode opens a transaction at the first statement and keeps it
                # open: every write here would be a savepoint in it, invisible to other
                # connections, and gone when the connection closes while Redis points at it.
                raise ValueError(
                    "conninfo: PostgresStore commits each write itself and needs a connection in autocommit "
                    "mode: psycopg.connect(dsn, autocommit=True), or pass the DSN"
                )
            self._conn, self._owns = conninfo, False
        else:
            self._conn, self._owns = psycopg.connect(conninfo, autocommit=True), True
        self._lock = threading.RLock()
        self._conninfo = None if isinstance(conninfo, psycopg.Connection) else str(conninfo)
        self._async: weakref.WeakKeyDictionary[Any, tuple[psycopg.AsyncConnection, asyncio.Lock]] = (
            weakref.WeakKeyDictionary()
        )
        self._table_name = sql.Identifier(schema, table) if schema else sql.Identifier(table)
        self._table = _identifier(schema, table) if schema else _identifier(table)
        self._names = names
        self._where = {"schema": schema, "table": table}
        self._text_config = text_search_config
        self._text_index_made = False
        self._col = {k: _identifier(v) for k, v in self._names.items() if v}
        self._get_statements: dict[bool, str] = {}
        if create:
            self._create_table(vector_type)
        self._types = self._column_types()
        self._register_loaders()

    # -- schema ------------------------------------------------------------

    def _create_table(self, vector_type: str) -> None:
        if vector_type not in ("bytea", "real[]", "vector"):
            raise ValueError(f"vector_type: expected 'bytea', 'real[]' or 'vector', got {vector_type!r}")
        parts = [sql.SQL("{} bigint PRIMARY KEY").format(self._col["id"])]
        parts.append(sql.SQL("{} " + vector_type + " NOT NULL").format(self._col["vector"]))
        if "text" in self._col:
            parts.append(sql.SQL("{} text").format(self._col["text"]))
        if "metadata" in self._col:
            parts.append(sql.SQL("{} jsonb").format(self._col["metadata"]))
        stmt = sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(self._table, sql.SQL(", ").join(parts))
        # IF NOT EXISTS is not atomic: two sessions creating one table at once both pass the
        # check and one fails on the catalog's unique index. A transaction-scoped advisory lock
        # keyed by the table's name makes the creators take turns (12 of 20 workers crashed before).
        key = self._table_name.as_string(self._conn)
        with self._lock, self._conn.transaction():
            self._conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (key,))
            self._conn.execute(stmt, ())

    def _column_types(self) -> dict[str, str]:
        """The SQL type of each mapped column, e.g. {'vector': 'vector(384)'}."""
        query = (
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped"
        )
        table = self._table_name.as_string(self._conn)  # a bound value, so '%' stays single
        with self._lock:
            found: dict[str, str] = dict(self._conn.execute(query, (table,)).fetchall())
        types = {}
        for role, column in list(self._names.items()):
            if column is None:
                continue
            if column not in found and column == _OPTIONAL_DEFAULTS.get(role):
                # an existing table without the default text or metadata column: it has none, as if None were given
                log.info("table %s has no column %r: rows have no %s", table, column, role)
                self._names[role] = None
                del self._col[role]
                continue
            if column not in found:
                hint = f"; pass {role}_column=None if the table has none" if role in _OPTIONAL_DEFAULTS else ""
                raise ValueError(f"{role}_column: table has no column {column!r} (columns: {sorted(found)}){hint}")
            types[role] = found[column]
        base = types["vector"].split("(")[0]
        if base not in ("vector", "bytea", *_FLOAT_OIDS):
            raise ValueError(f"vector_column: unsupported type {types['vector']!r}; use vector, real[] or bytea")
        if types["id"] not in _ID_FORMATS:
            raise ValueError(f"id_column: expected an integer column, got {types['id']!r}")
        return types

    def _register_loaders(self) -> None:
        """Read vector columns as raw bytes (parsed per batch), whatever their type."""
        raw = self._conn.adapters.get_loader(psycopg.postgres.types["bytea"].oid, Format.BINARY)
        base = self._types["vector"].split("(")[0]
        self._loaders: list[tuple[int, Any]] = []
        if base == "vector":
            info = psycopg.types.TypeInfo.fetch(self._conn, "vector")
            if info is None:
                raise ValueError("vector_column is pgvector 'vector' but the extension is not installed")
            self._loaders.append((info.oid, raw))
        elif base in _FLOAT_OIDS:
            self._loaders.append((psycopg.postgres.types[base.removesuffix("[]")].array_oid, raw))

    def _cursor(self, name: str | None = None, conn: Any = None) -> Any:
        """A binary cursor reading vectors raw; the loaders stay local to it, not the connection."""
        conn = conn or self._conn
        cur = conn.cursor(name=name, binary=True) if name else conn.cursor(binary=True)
        for oid, loader in self._loaders:
            cur.adapters.register_loader(oid, loader)
        cur.adapters.register_dumper(_IdArray, _IdArrayDumper)
        return cur

    # -- encoding ----------------------------------------------------------

    def _parse_vectors(self, blobs: Sequence[bytes]) -> NDArray[np.float32]:
        """Turn the raw binary values of a batch into one (n, d) float32 matrix."""
        if not blobs:
            return np.empty((0, 0), np.float32)
        data = np.frombuffer(b"".join(blobs), dtype=np.uint8).reshape(len(blobs), -1)
        base = self._types["vector"].split("(")[0]
        if base == "bytea":
            return data.view("<f4").astype(np.float32)
        if base == "vector":  # int16 dim, int16 unused, then big-endian float4s
            return data[:, 4:].copy().view(">f4").astype(np.float32)
        _, fmt = _FLOAT_OIDS[base]  # 20-byte array header, then (int32 length, value) per element
        width = np.dtype(fmt).itemsize
        items = data[:, 20:].copy().view(np.dtype([("len", ">i4"), ("v", fmt)]))
        if (items["len"] != width).any():
            raise ValueError("vector_column: NULL elements in a stored vector")
        return items["v"].astype(np.float32)

    def _encode_vectors(self, vectors: NDArray[np.float32]) -> NDArray[np.uint8]:
        """Each vector in the column's binary format, one row of bytes per vector."""
        n, d = vectors.shape
        base = self._types["vector"].split("(")[0]
        if base == "bytea":
            return vectors.astype("<f4").view(np.uint8).reshape(n, -1)
        if base == "vector":
            head = np.frombuffer(struct.pack(">hh", d, 0), np.uint8)
            body = vectors.astype(">f4").view(np.uint8).reshape(n, -1)
            return np.hstack([np.broadcast_to(head, (n, 4)), body])
        oid, fmt = _FLOAT_OIDS[base]
        head = np.frombuffer(struct.pack(">iiiii", 1, 0, oid, d, 1), np.uint8)
        items = np.empty((n, d), np.dtype([("len", ">i4"), ("v", fmt)]))
        items["len"] = np.dtype(fmt).itemsize
        items["v"] = vectors
        return np.hstack([np.broadcast_to(head, (n, 20)), items.view(np.uint8).reshape(n, -1)])

    def _copy_stream(
        self,
        ids: NDArray[np.int64],
        vectors: NDArray[np.float32],
        texts: Sequence[str | None] | None,
        metadata: Sequence[Metadata | None] | None,
    ) -> bytes:
        """A binary COPY stream of the rows, columns in `self._columns()` order."""
        self.check_ids(ids)  # before any write, also when put() is called directly
        id_fmt = _ID_FORMATS[self._types["id"]]
        id_bytes = np.asarray(ids).astype(id_fmt).view(np.uint8).reshape(len(ids), -1)
        vec_bytes = self._encode_vectors(vectors)
        n_fields = len(self._col)
        parts = [_COPY_HEADER]
        for i in range(len(ids)):
            fields: list[bytes | None] = [bytes(id_bytes[i]), bytes(vec_bytes[i])]
            if "text" in self._col:
                text = texts[i] if texts is not None else None
                fields.append(None if text is None else text.encode("utf-8"))
            if "metadata" in self._col:
                meta = dump_metadata(metadata[i]) if metadata is not None else None
                prefix = b"\x01" if self._types["metadata"] == "jsonb" else b""
                fields.append(None if meta is None else prefix + meta.encode("utf-8"))
            parts.append(struct.pack(">h", n_fields))
            for field in fields:
                parts.append(struct.pack(">i", -1) if field is None else struct.pack(">i", len(field)) + field)
        parts.append(_COPY_TRAILER)
        return b"".join(parts)

    def _columns(self, payload: bool = True) -> sql.Composed:
        roles = ["id", "vector"] + ([r for r in ("text", "metadata") if r in self._col] if payload else [])
        return sql.SQL(", ").join(self._col[r] for r in roles)

    # -- protocol ----------------------------------------------------------

    def check(self, texts: Sequence[str | None] | None, metadata: Sequence[Metadata | None] | None) -> None:
        """Refuse what Postgres cannot hold (NUL in text or jsonb, a column the table lacks) before any write."""
        _check_no_nul(texts, metadata)
        for role, values in (("text", texts), ("metadata", metadata)):
            if role not in self._col and values is not None and any(v is not None for v in values):
                raise ValueError(f"{role}: table {self._table_name.as_string(self._conn)} has no {role} column")

    def describe(self) -> dict[str, Any]:
        """The kind and mapping kept with the index (never the DSN or credentials): how to open this table again."""
        mapping = {f"{role}_column": column for role, column in self._names.items()}
        return {"kind": "postgres", **self._where, **mapping}

    def check_ids(self, ids: NDArray[np.int64]) -> None:
        """Refuse ids the id column cannot hold: binary COPY would wrap them onto other rows."""
        kind = self._types["id"]
        low, high = id_range(np.dtype(_ID_FORMATS[kind]).itemsize)
        ids = np.asarray(ids, np.int64)
        if len(ids) and (int(ids.min()) < low or int(ids.max()) > high):
            raise ValueError(
                f"ids: the {kind} column {self._names['id']!r} holds ids in [{low}, {high}], "
                f"got min {int(ids.min())} max {int(ids.max())}"
            )

    @_reconnecting
    def put(
        self,
        ids: NDArray[np.int64],
        vectors: NDArray[np.float32],
        texts: Sequence[str | None] | None = None,
        metadata: Sequence[Metadata | None] | None = None,
    ) -> None:
        stream = self._put_stream(ids, vectors, texts, metadata)
        create, copy_in, analyze, update, insert = self._put_statements()
        with self._lock, self._conn.transaction():
            cur = self._conn.cursor()
            cur.execute(create, ())
            with cur.copy(copy_in) as copy:
                copy.write(stream)
            cur.execute(analyze, ())
            cur.execute(update, ())
            cur.execute(insert, ())

    async def aput(
        self,
        ids: NDArray[np.int64],
        vectors: NDArray[np.float32],
        texts: Sequence[str | None] | None = None,
        metadata: Sequence[Metadata | None] | None = None,
    ) -> None:
        stream = self._put_stream(ids, vectors, texts, metadata)
        create, copy_in, analyze, update, insert = self._put_statements()
        conn, lock = await self._aconn()
        async with lock, conn.transaction():
            cur = conn.cursor()
            await cur.execute(create, ())
            async with cur.copy(copy_in) as copy:
                await copy.write(stream)
            await cur.execute(analyze, ())
            await cur.execute(update, ())
            await cur.execute(insert, ())

    def _put_stream(self, ids: Any, vectors: Any, texts: Any, metadata: Any) -> bytes:
        _check_no_nul(texts, metadata)
        return self._copy_stream(np.asarray(ids, np.int64), np.asarray(vectors, np.float32), texts, metadata)

    def _put_statements(self) -> tuple[sql.Composed, sql.Composed, sql.SQL, sql.Composed, sql.Composed]:
        """COPY into a temporary table, then UPDATE existing rows and INSERT new ones from it.

        The temporary table is ANALYZEd: without statistics the planner
        hash-joins it against the whole target table, so each batch cost
        grew with the table (measured: 1,180 ms against 183 ms per 10k-row
        batch at 500k rows, benchmarks/results/scale.md).

        UPDATE then INSERT (not DELETE + INSERT): columns lshrs does not map
        keep their values when a row of an existing table is replaced.
        """
        cols = self._columns()
        roles = [r for r in ("vector", "text", "metadata") if r in self._col]
        assign = sql.SQL(", ").join(sql.SQL("{c} = i.{c}").format(c=self._col[r]) for r in roles)
        # COPY runs without parameters, so psycopg leaves '%' alone: plain identifiers there
        copy_cols = sql.SQL(", ").join(sql.Identifier(self._names[r] or "") for r in ["id", *roles])
        return (
            sql.SQL("CREATE TEMP TABLE lshrs_incoming ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA").format(
                cols, self._table
            ),
            sql.SQL("COPY lshrs_incoming ({}) FROM STDIN (FORMAT BINARY)").format(copy_cols),
            sql.SQL("ANALYZE lshrs_incoming"),
            sql.SQL("UPDATE {t} SET {a} FROM lshrs_incoming i WHERE {t}.{id} = i.{id}").format(
                t=self._table, a=assign, id=self._col["id"]
            ),
            sql.SQL(
                "INSERT INTO {t} ({c}) SELECT {c} FROM lshrs_incoming i "
                "WHERE NOT EXISTS (SELECT 1 FROM {t} WHERE {t}.{id} = i.{id})"
            ).format(t=self._table, c=cols, id=self._col["id"]),
        )

    @_reconnecting
    def get(self, ids: NDArray[np.int64], *, payload: bool = True) -> Rows:
        ids = np.asarray(ids, np.int64)
        with self._lock:
            cur = self._cursor()
            fetched = cur.execute(self._get_statement(payload), (_IdArray(ids),), prepare=True).fetchall()
        return in_requested_order(ids, self._rows(fetched, payload))

    async def aget(self, ids: NDArray[np.int64], *, payload: bool = True) -> Rows:
        ids = np.asarray(ids, np.int64)
        conn, lock = await self._aconn()
        async with lock:
            cur = self._cursor(conn=conn)
            await cur.execute(self._get_statement(payload), (_IdArray(ids),), prepare=True)
            fetched = await cur.fetchall()
        return in_requested_order(ids, self._rows(fetched, payload))

    def _get_statement(self, payload: bool) -> str:
        """The read of rows by id, composed once per store (composing it took a tenth of a 100-row read)."""
        if payload not in self._get_statements:
            stmt = sql.SQL("SELECT {} FROM {} WHERE {} = ANY(%s)").format(
                self._columns(payload), self._table, self._col["id"]
            )
            self._get_statements[payload] = stmt.as_string(self._conn)
        return self._get_statements[payload]

    @_reconnecting
    def find_where(self, expr: Where, limit: int | None = None) -> NDArray[np.int64] | None:
        """Ids passing `expr` (at most `limit`), tested on jsonb (a GIN index serves equality); None if SQL cannot."""
        statement = self._find_statement(expr, limit)
        if statement is None:
            return None
        with self._lock:
            fetched = self._conn.execute(*statement).fetchall()
        return np.array([row[0] for row in fetched], np.int64)

    async def afind_where(self, expr: Where, limit: int | None = None) -> NDArray[np.int64] | None:
        statement = self._find_statement(expr, limit)
        if statement is None:
            return None
        conn, lock = await self._aconn()
        async with lock:
            cur = await conn.execute(*statement)
            fetched = await cur.fetchall()
        return np.array([row[0] for row in fetched], np.int64)

    def _find_statement(self, expr: Where, limit: int | None = None) -> tuple[sql.Composed, list[Any]] | None:
        if "metadata" not in self._col:
            return None  # no metadata column (a filter can still pass empty metadata): the caller scans
        column: sql.Composable = self._col["metadata"]
        if self._types["metadata"] != "jsonb":
            column = sql.SQL("({}::jsonb)").format(column)
        compiled = pg_where.postgres(expr, column)
        if compiled is None:
            return None
        condition, params = compiled
        cut = sql.SQL("" if limit is None else f" LIMIT {int(limit)}")
        return sql.SQL("SELECT {} FROM {} WHERE {}{}").format(self._col["id"], self._table, condition, cut), params

    @_reconnecting
    def keyword_search(self, text: str, limit: int) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """The `limit` best full-text matches for the words of `text` (idf-weighted ts_rank), best first, with scores.

        The first call creates a GIN index on the text column's tsvector
        (``<table>_<column>_lshrs_fts``); on a large table that takes a while, once.
        """
        if "text" not in self._col:
            raise ValueError("keyword_search: the table has no text column (text_column=None)")
        words = sorted(set(terms(text)))
        if not words:
            return ranked([])
        search = pg_keywords.TextSearch(
            self._table, self._table_name.as_string(self._conn), self._col["id"], self._col["text"], self._text_config
        )
        with self._lock:
            if not self._text_index_made:
                name = f"{self._where['table']}_{self._names['text']}_lshrs_fts"
                log.info("creating the keyword index %s (once)", name)
                with self._conn.transaction():  # creators take turns, as in _create_table
                    key = self._table_name.as_string(self._conn) + ":fts"
                    self._conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (key,))
                    self._conn.execute(search.create_index(name), ())
                self._text_index_made = True
            weights = pg_keywords.weights(self._conn.execute(*search.frequencies(words)).fetchall())
            rows = self._conn.execute(*search.search(weights, limit)).fetchall() if weights else []
        return ranked(rows)

    def _rows(self, fetched: list[tuple[Any, ...]], payload: bool) -> Rows:
        if not fetched:
            return empty_rows(0)
        columns = list(zip(*fetched))
        has_text, has_meta = "text" in self._col, "metadata" in self._col
        texts = list(columns[2]) if payload and has_text else [None] * len(fetched)
        metas = list(columns[2 + has_text]) if payload and has_meta else [None] * len(fetched)
        return Rows(
            np.array(columns[0], np.int64),
            self._parse_vectors(columns[1]),
            texts if payload else None,
            metas if payload else None,
        )

    @_reconnecting
    def delete(self, ids: NDArray[np.int64]) -> int:
        stmt = sql.SQL("DELETE FROM {} WHERE {} = ANY(%s)").format(self._table, self._col["id"])
        with self._lock, self._conn.transaction():
            return self._conn.execute(stmt, (np.unique(ids).tolist(),)).rowcount

    async def adelete(self, ids: NDArray[np.int64]) -> int:
        stmt = sql.SQL("DELETE FROM {} WHERE {} = ANY(%s)").format(self._table, self._col["id"])
        conn, lock = await self._aconn()
        async with lock:
            cur = await conn.execute(stmt, (np.unique(ids).tolist(),))
            return cur.rowcount

    @_reconnecting
    def page(self, after: int | None, limit: int, payload: bool = True) -> Rows | None:
        """The first `limit` rows with ids above `after`, None past the end: one query, no transaction kept.

        What a build and the exact path read a page at a time (stores/pages.py); a
        scan would open a connection of its own for every page.
        """
        stmt, params = self._page_statement(after, limit, payload)
        with self._lock:
            fetched = self._cursor().execute(stmt, params).fetchall()
        return self._rows(fetched, payload) if fetched else None

    def _page_statement(self, after: int | None, limit: int, payload: bool) -> tuple[sql.Composed, tuple[int, ...]]:
        where = sql.SQL("") if after is None else sql.SQL("WHERE {} > %s").format(self._col["id"])
        stmt = sql.SQL("SELECT {} FROM {} {} ORDER BY {} LIMIT %s").format(
            self._columns(payload), self._table, where, self._col["id"]
        )
        return stmt, (int(limit),) if after is None else (int(after), int(limit))

    async def apage(self, after: int | None, limit: int, payload: bool = True) -> Rows | None:
        """The first `limit` rows with ids above `after` (the async exact scan), None past the end."""
        stmt, params = self._page_statement(after, limit, payload)
        conn, lock = await self._aconn()
        async with lock:
            cur = self._cursor(conn=conn)
            await cur.execute(stmt, params)
            fetched = await cur.fetchall()
        return self._rows(fetched, payload) if fetched else None

    async def _aconn(self) -> tuple[psycopg.AsyncConnection, asyncio.Lock]:
        """This event loop's async connection (and the lock that keeps its transactions apart)."""
        loop = asyncio.get_running_loop()
        found = self._async.get(loop)
        if found is not None and (found[0].closed or found[0].broken):
            found = None  # the server went away since: connect again
        if found is None:
            info = self._conn.info
            conninfo = psycopg.conninfo.make_conninfo(info.dsn, password=info.password or None)
            conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
            found = self._async[loop] = (conn, asyncio.Lock())
        return found

    async def aclose(self) -> None:
        """Close this event loop's async connection, if one was opened."""
        found = self._async.pop(asyncio.get_running_loop(), None)
        if found is not None:
            await found[0].close()

    def scan(self, *, batch_size: int = 10_000, after: int | None = None, payload: bool = True) -> Iterator[Rows]:
        """Rows in id order, a batch at a time, from one server-side cursor (one sort of the table).

        The cursor lives in a transaction across the caller's work on each
        batch (a verify or a training sample of hours on a large table), so
        it gets a connection of its own: the store's connection stays free
        for queries and writes meanwhile. A connection the caller passed in
        is the only one there is: then the scan holds it, as before.
        """
        self._revive()
        where = sql.SQL("") if after is None else sql.SQL("WHERE {} > %s").format(self._col["id"])
        columns = self._columns(payload)
        stmt = sql.SQL("SELECT {} FROM {} {} ORDER BY {}").format(columns, self._table, where, self._col["id"])
        params = () if after is None else (int(after),)
        if self._conninfo is None:
            with self._lock, self._conn.transaction():
                yield from self._batches(self._conn, stmt, params, batch_size, payload)
            return
        with psycopg.connect(self._conninfo) as conn:  # not autocommit: the cursor needs a transaction
            yield from self._batches(conn, stmt, params, batch_size, payload)

    def _batches(
        self, conn: Any, stmt: sql.Composed, params: tuple[Any, ...], batch_size: int, payload: bool
    ) -> Iterator[Rows]:
        cur = self._cursor("lshrs_scan", conn=conn)
        cur.itersize = batch_size
        cur.execute(stmt, params)
        while batch := cur.fetchmany(batch_size):
            yield self._rows(batch, payload)
        cur.close()

    @_reconnecting
    def count(self) -> int:
        with self._lock:
            row = self._conn.execute(sql.SQL("SELECT count(*) FROM {}").format(self._table), ()).fetchone()
        return int(row[0]) if row else 0

    @_reconnecting
    def dim(self) -> int | None:
        stmt = sql.SQL("SELECT {} FROM {} LIMIT 1").format(self._col["vector"], self._table)
        with self._lock:
            cur = self._cursor()
            row = cur.execute(stmt, ()).fetchone()
        return None if row is None else int(self._parse_vectors([row[0]]).shape[1])

    def close(self) -> None:
        if self._owns:
            self._conn.close()

    def _revive(self) -> bool:
        """Connect again when the connection this store opened was lost (a Postgres restart); whether it did.

        A connection the caller passed in is theirs to replace.
        """
        with self._lock:
            if self._conninfo is None or not (self._conn.closed or self._conn.broken):
                return False
            log.info("PostgresStore: the connection was lost; connecting again")
            self._conn = psycopg.connect(self._conninfo, autocommit=True)
            return True


def _identifier(*names: str) -> sql.Identifier:
    """An identifier for statements run with parameters, where psycopg reads any '%' as a placeholder.

    So '%' is doubled, and every statement holding identifiers is executed with
    parameters (``()`` when it has none), which turns '%%' back into '%'.
    """
    return sql.Identifier(*(name.replace("%", "%%") for name in names))


def _check_identifiers(names: Mapping[str, str | None]) -> None:
    """Refuse names Postgres would reject, silently truncate or resolve elsewhere, before connecting."""
    table = names["table"]
    if names.get("schema") is None and isinstance(table, str) and table.startswith("pg_"):
        # CREATE would make public.pg_x, but reads and writes would hit pg_catalog.pg_x (searched first)
        raise ValueError(f"table: {table!r} resolves to the system catalog pg_catalog first; pass schema=")
    for role, value in names.items():
        name = check_identifier(value, role)
        size = len(name.encode("utf-8"))
        if size > _MAX_IDENTIFIER_BYTES:
            raise ValueError(
                f"{role}: Postgres identifiers hold at most {_MAX_IDENTIFIER_BYTES} bytes (longer ones are "
                f"silently truncated), got {size} bytes: {name[:20]!r}..."
            )


def _check_no_nul(texts: Sequence[str | None] | None, metadata: Sequence[Metadata | None] | None) -> None:
    """Postgres text and jsonb cannot hold NUL; refuse before anything is written."""
    for i, text in enumerate(texts or []):
        if text is not None and "\x00" in text:
            raise ValueError(f"texts: Postgres text cannot hold NUL characters (row {i})")
    for i, meta in enumerate(metadata or []):
        if meta is not None and _JSON_NUL.search(dump_metadata(meta) or ""):
            raise ValueError(f"metadata: Postgres jsonb cannot hold NUL characters (row {i})")
