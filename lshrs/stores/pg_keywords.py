"""Keyword search in Postgres: full-text search over the text column, served by a GIN expression index.

Like the SQLite side (sql_keywords.py), it matches the words of
`lshrs.keywords.terms` joined by OR, as quoted lexemes, never the user's
text as query syntax. The index is created on the first keyword search;
Postgres keeps it current for every writer.
"""

from __future__ import annotations

from psycopg import sql

from lshrs.keywords import terms


def tsquery_text(text: str) -> str | None:
    """The words of `text` as a to_tsquery OR-expression of quoted lexemes; None when it has none."""
    words = sorted(set(terms(text)))
    return " | ".join(f"'{w}'" for w in words) or None


def pg_document(text_column: sql.Composable, config: str) -> sql.Composed:
    """The indexed expression: the query must spell it exactly as the index does for the planner to use it."""
    return sql.SQL("to_tsvector({}::regconfig, coalesce({}, ''))").format(sql.Literal(config), text_column)


def pg_index(table: sql.Composable, name: str, text_column: sql.Composable, config: str) -> sql.Composed:
    return sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING GIN (({}))").format(
        sql.Identifier(name[:63].replace("%", "%%")), table, pg_document(text_column, config)
    )


def pg_search(
    table: sql.Composable, id_column: sql.Composable, text_column: sql.Composable, config: str
) -> sql.Composed:
    """Matches of to_tsquery(%s), best ts_rank_cd first, at most %s (parameters: the OR-expression, the limit)."""
    return sql.SQL(
        "SELECT {id}, ts_rank_cd({doc}, q) AS score FROM {t}, to_tsquery({cfg}::regconfig, %s) AS q "
        "WHERE {doc} @@ q ORDER BY score DESC, {id} LIMIT %s"
    ).format(id=id_column, doc=pg_document(text_column, config), t=table, cfg=sql.Literal(config))
