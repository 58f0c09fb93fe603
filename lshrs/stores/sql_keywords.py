"""Keyword search in SQLite: an FTS5 index over the text column (Postgres: pg_keywords.py).

It matches the words of `lshrs.keywords.terms` joined by OR (any word may
match; more matching words rank higher), never the user's text as query
syntax, so quotes, operators and stray punctuation cannot break or widen
a query. The index is made on the first keyword search and kept in step
with the table by triggers, so every writer, lshrs or not, keeps it current.
"""

from __future__ import annotations

import logging
import sqlite3

import numpy as np
from numpy.typing import NDArray

from lshrs.keywords import terms
from lshrs.stores.sql import quote_identifier, ranked

log = logging.getLogger("lshrs")

Found = tuple[NDArray[np.int64], NDArray[np.float64]]


def fts5_name(table: str) -> str:
    return table + "_lshrs_fts"


def fts5_search(conn: sqlite3.Connection, table: str, id_column: str, text_column: str, text: str, limit: int) -> Found:
    """The `limit` best FTS5 matches (bm25, negated so higher is better), creating the index if missing."""
    words = sorted(set(terms(text)))
    if not words:
        return ranked([])
    _fts5_create(conn, table, id_column, text_column)
    fts = quote_identifier(fts5_name(table))
    match = " OR ".join(f'"{w}"' for w in words)  # \w+ tokens hold no quote: each is one literal term
    rows = conn.execute(
        f"SELECT rowid, -bm25({fts}) AS score FROM {fts} WHERE {fts} MATCH ? ORDER BY score DESC, rowid LIMIT ?",
        (match, int(limit)),
    ).fetchall()
    return ranked(rows)


def _fts5_create(conn: sqlite3.Connection, table: str, id_column: str, text_column: str) -> None:
    """An external-content FTS5 table over the text column, filled once and then kept current by triggers.

    Made in one immediate transaction, so no write lands between the
    triggers and the initial fill (it would be indexed twice or not at all).
    """
    name = fts5_name(table)
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (name,)).fetchone():
        return
    fts, t, i, x = (quote_identifier(n) for n in (name, table, id_column, text_column))
    add = f"INSERT INTO {fts}(rowid, {x}) VALUES (new.{i}, new.{x});"
    drop = f"INSERT INTO {fts}({fts}, rowid, {x}) VALUES ('delete', old.{i}, old.{x});"
    statements = [
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {fts} USING fts5({x}, content={t}, content_rowid={i})",
        f"CREATE TRIGGER IF NOT EXISTS {quote_identifier(name + '_ai')} AFTER INSERT ON {t} BEGIN {add} END",
        f"CREATE TRIGGER IF NOT EXISTS {quote_identifier(name + '_ad')} AFTER DELETE ON {t} BEGIN {drop} END",
        f"CREATE TRIGGER IF NOT EXISTS {quote_identifier(name + '_au')} AFTER UPDATE ON {t} BEGIN {drop} {add} END",
        f"INSERT INTO {fts}({fts}) VALUES ('rebuild')",
    ]
    log.info("creating the keyword index %s over %s.%s", name, table, text_column)
    outer = conn.in_transaction
    conn.execute("SAVEPOINT lshrs_fts" if outer else "BEGIN IMMEDIATE")
    try:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (name,)).fetchone():
            for statement in statements:
                conn.execute(statement)
    except BaseException:
        conn.execute("ROLLBACK TO lshrs_fts" if outer else "ROLLBACK")
        raise
    conn.execute("RELEASE lshrs_fts" if outer else "COMMIT")
