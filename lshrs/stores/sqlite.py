"""SQLite store: the embedded default, one file next to the embedded Redis data.

Vectors are float32 blobs. Id lists travel as one JSON parameter read with
``json_each``, so a lookup of thousands of ids is one statement with one bound
value and no limit on the number of SQL variables.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from lshrs.stores import sql_keywords, sql_where
from lshrs.stores.base import Metadata, Rows, empty_rows, in_requested_order
from lshrs.stores.sql import dump_metadata, load_metadata, quote_identifier
from lshrs.where import Where


def ids_json(ids: NDArray[np.int64]) -> str:
    return json.dumps(np.asarray(ids, np.int64).tolist())


class SQLiteStore:
    """Documents in an SQLite table, created if missing.

    Args:
        path: database file, or an open ``sqlite3.Connection`` to use as is.
        table: table name; the other arguments name its columns, so an
            existing table can be used if its vector column holds float32 blobs.
    """

    def __init__(
        self,
        path: str | Path | sqlite3.Connection = "lshrs.sqlite3",
        *,
        table: str = "documents",
        id_column: str = "id",
        vector_column: str = "vector",
        text_column: str = "text",
        metadata_column: str | None = "metadata",
    ) -> None:
        # names first: a bad one raises before any file is created or connection opened
        self._mapping = {"table": table, "id_column": id_column, "vector_column": vector_column,
                         "text_column": text_column, "metadata_column": metadata_column}  # fmt: skip
        self._t = quote_identifier(table)
        self._id = quote_identifier(id_column)
        self._vec = quote_identifier(vector_column)
        self._text = quote_identifier(text_column)
        self._meta = quote_identifier(metadata_column) if metadata_column else None
        if isinstance(path, sqlite3.Connection):
            self._conn = path
        else:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(str(path), check_same_thread=False, timeout=60)
            self._conn.execute("PRAGMA journal_mode=WAL")
        self._lock = threading.RLock()
        self._create_table()

    def _create_table(self) -> None:
        meta = f", {self._meta} TEXT" if self._meta else ""
        with self._lock, self._conn:
            self._conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self._t} "
                f"({self._id} INTEGER PRIMARY KEY, {self._vec} BLOB NOT NULL, {self._text} TEXT{meta})"
            )

    def _columns(self, payload: bool) -> str:
        cols = [self._id, self._vec]
        if payload:
            cols.append(self._text)
            cols.append(self._meta or "NULL")
        return ", ".join(cols)

    def put(
        self,
        ids: NDArray[np.int64],
        vectors: NDArray[np.float32],
        texts: Sequence[str | None] | None = None,
        metadata: Sequence[Metadata | None] | None = None,
    ) -> None:
        ids = np.asarray(ids, np.int64)
        vectors = np.ascontiguousarray(vectors, dtype="<f4")
        texts = texts if texts is not None else [None] * len(ids)
        metas = [dump_metadata(m) for m in metadata] if metadata is not None else [None] * len(ids)
        rows = zip(ids.tolist(), map(bytes, vectors), texts, metas)
        cols = [self._id, self._vec, self._text] + ([self._meta] if self._meta else [])
        marks = ", ".join("?" * len(cols))
        if not self._meta:
            rows = ((i, v, t) for i, v, t, _ in rows)  # type: ignore[assignment]
        # An upsert in place: a replaced row keeps the columns lshrs does not map (a user's
        # own table), where DELETE + INSERT wiped them. Needs the id column to be unique,
        # which every table lshrs creates is (INTEGER PRIMARY KEY).
        updates = ", ".join(f"{c} = excluded.{c}" for c in cols[1:])
        with self._lock, self._conn:
            self._conn.executemany(
                f"INSERT INTO {self._t} ({', '.join(cols)}) VALUES ({marks}) "
                f"ON CONFLICT({self._id}) DO UPDATE SET {updates}",
                rows,
            )

    def get(self, ids: NDArray[np.int64], *, payload: bool = True) -> Rows:
        ids = np.asarray(ids, np.int64)
        sql = f"SELECT {self._columns(payload)} FROM {self._t} WHERE {self._id} IN (SELECT value FROM json_each(?))"
        with self._lock:
            fetched = self._conn.execute(sql, (ids_json(ids),)).fetchall()
        return in_requested_order(ids, self._rows(fetched, payload))

    def _rows(self, fetched: list[tuple], payload: bool) -> Rows:
        if not fetched:
            return empty_rows(self.dim() or 0)
        columns = list(zip(*fetched))
        vectors = np.frombuffer(b"".join(columns[1]), dtype="<f4").reshape(len(fetched), -1)
        return Rows(
            np.array(columns[0], np.int64),
            vectors.astype(np.float32),
            list(columns[2]) if payload else None,
            [load_metadata(m) for m in columns[3]] if payload else None,
        )

    def describe(self) -> dict[str, Any]:
        """The kind and mapping kept with the index (never the file's path): how to open this table again."""
        return {"kind": "sqlite", **self._mapping}

    def find_where(self, expr: Where, limit: int | None = None) -> NDArray[np.int64] | None:
        """Ids whose metadata passes `expr` (at most `limit`), by SQLite's JSON functions; None if SQL cannot."""
        compiled = None if self._meta is None else sql_where.sqlite(expr, self._meta)
        if compiled is None:
            return None  # no metadata column (a filter can still pass empty metadata): the caller scans
        condition, params = compiled
        with self._lock:
            cut = "" if limit is None else f" LIMIT {int(limit)}"
            fetched = self._conn.execute(f"SELECT {self._id} FROM {self._t} WHERE {condition}{cut}", params).fetchall()
        return np.array([row[0] for row in fetched], np.int64)

    def keyword_search(self, text: str, limit: int) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """The `limit` best FTS5 (bm25) matches for the words of `text`, best first, and their scores.

        The first call adds an FTS5 table and three triggers beside the table
        (named after it, ``_lshrs_fts``), which keep it current for every writer.
        """
        table, id_column, text_column = (str(self._mapping[k]) for k in ("table", "id_column", "text_column"))
        with self._lock:
            return sql_keywords.fts5_search(self._conn, table, id_column, text_column, text, limit)

    def delete(self, ids: NDArray[np.int64]) -> int:
        with self._lock, self._conn:
            cur = self._conn.execute(
                f"DELETE FROM {self._t} WHERE {self._id} IN (SELECT value FROM json_each(?))",
                (ids_json(np.unique(ids)),),
            )
        return cur.rowcount

    def scan(self, *, batch_size: int = 10_000, after: int | None = None, payload: bool = True) -> Iterator[Rows]:
        last = after
        while True:
            where = "" if last is None else f"WHERE {self._id} > ?"
            params = () if last is None else (last,)
            sql = f"SELECT {self._columns(payload)} FROM {self._t} {where} ORDER BY {self._id} LIMIT {int(batch_size)}"
            with self._lock:
                fetched = self._conn.execute(sql, params).fetchall()
            if not fetched:
                return
            rows = self._rows(fetched, payload)
            last = int(rows.ids[-1])
            yield rows

    def count(self) -> int:
        with self._lock:
            return int(self._conn.execute(f"SELECT COUNT(*) FROM {self._t}").fetchone()[0])

    def dim(self) -> int | None:
        with self._lock:
            row = self._conn.execute(f"SELECT length({self._vec}) FROM {self._t} LIMIT 1").fetchone()
        return None if row is None else int(row[0]) // 4

    def close(self) -> None:
        self._conn.close()
