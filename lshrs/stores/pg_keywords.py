"""Keyword search in Postgres: full-text search over the text column, ranked by BM25-style term weights.

Like the SQLite side (sql_keywords.py), it matches the words of
`lshrs.keywords.terms` joined by OR, as quoted lexemes, never the user's
text as query syntax. Postgres's own ranking (ts_rank) knows nothing of how
rare a word is, so "Tell me about Dreros" ranked every passage saying
"tell" above the one naming Dreros (benchmarks/results/hybrid-postgres.md).
Each word is therefore weighted by its inverse document frequency, counted
with the GIN index in one round trip (up to DF_CAP rows a word): the score
is the sum over matched words of idf x (1 + ts_rank), the rank (length
normalised, below 1) only ordering documents that match the same words.
With idf x ts_rank alone, passages saying "tell" three times still
outranked the one naming a rare number once.
Common words (see `weights`) are left out of the match when rarer ones are
present; they would add most of the rows and little to the ranking.
Postgres's parser reads the digits after a hyphen as a signed integer
("ISBN 0-451-52634-1" holds '-52634'), so a number also matches its
negative: 11 of 67 rare numbers were found before, 67 of 67 after.
The index is created on the first keyword search; Postgres keeps it
current for every writer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from psycopg import sql

# Rows counted per word for its document frequency: beyond this a word is common.
DF_CAP = 10_000
# A word in this share of the rows (and at least COMMON_MIN rows) is common too.
COMMON_SHARE = 0.02
COMMON_MIN = 50


@dataclass(frozen=True)
class TextSearch:
    """The statements of keyword search on one table's text column."""

    table: sql.Composable
    table_name: str  # for to_regclass: the qualified name as text
    id_column: sql.Composable
    text_column: sql.Composable
    config: str

    def document(self) -> sql.Composed:
        """The indexed expression: queries must spell it exactly as the index does for the planner to use it."""
        config = sql.Literal(self.config)
        return sql.SQL("to_tsvector({}::regconfig, coalesce({}, ''))").format(config, self.text_column)

    def create_index(self, name: str) -> sql.Composed:
        return sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING GIN (({}))").format(
            sql.Identifier(name[:63].replace("%", "%%")), self.table, self.document()
        )

    def frequencies(self, words: list[str]) -> tuple[sql.Composed, tuple[object, ...]]:
        """(word, rows holding it up to DF_CAP, the table's estimated rows) per word, in one statement."""
        statement = sql.SQL(
            "SELECT w, (SELECT count(*) FROM (SELECT 1 FROM {t} WHERE {doc} @@ to_tsquery({cfg}::regconfig, q) "
            "LIMIT {cap}) AS s), (SELECT reltuples FROM pg_class WHERE oid = to_regclass(%s)) "
            "FROM unnest(%s::text[], %s::text[]) AS u(w, q)"
        ).format(t=self.table, doc=self.document(), cfg=sql.Literal(self.config), cap=sql.Literal(DF_CAP))
        return statement, (self.table_name, words, [word_query(w) for w in words])

    def search(self, weights: dict[str, float], limit: int) -> tuple[sql.Composed, tuple[object, ...]]:
        """The `limit` best rows by the sum of idf x (1 + ts_rank) over the matched words (parameters included)."""
        words = sorted(weights)
        queries = [sql.SQL("to_tsquery({}::regconfig, %s)").format(sql.Literal(self.config)) for _ in words]
        score = sql.SQL(" + ").join(
            sql.SQL("{w} * (CASE WHEN d @@ {q} THEN 1 + ts_rank(d, {q}, 1) ELSE 0 END)").format(
                w=sql.Literal(weights[w]), q=q
            )
            for w, q in zip(words, queries)
        )
        statement = sql.SQL(
            "SELECT i, {score} AS score FROM (SELECT {id} AS i, {doc} AS d FROM {t} WHERE {doc} @@ ({any}) OFFSET 0) "
            "AS m ORDER BY score DESC, i LIMIT %s"
        ).format(score=score, id=self.id_column, doc=self.document(), t=self.table, any=sql.SQL(" || ").join(queries))
        lexemes = tuple(word_query(w) for w in words)
        return statement, (*(q for q in lexemes for _ in range(2)), *lexemes, int(limit))  # each q twice in the score


def word_query(word: str) -> str:
    """One word as to_tsquery text: a quoted lexeme (terms() words hold no quote), a number also as its negative."""
    return f"'{word}' | '-{word}'" if word.isdigit() else f"'{word}'"


def weights(found: list[tuple[str, int, float]]) -> dict[str, float]:
    """Inverse document frequency of each word that occurs, the common ones dropped when rarer ones occur.

    Common: in COMMON_SHARE of the rows or more (or DF_CAP). Every matched row
    is tokenised again to rank it, so a question of twenty words took 66 ms
    on 4,441 passages with all its words matched (hybrid-postgres.md).
    """
    present = [(w, int(df)) for w, df, _ in found if df > 0]
    rows = max([float(found[0][2] or 0) if found else 0.0, *(df for _, df in present), 1.0])
    common = min(DF_CAP, max(COMMON_MIN, COMMON_SHARE * rows))
    kept = [(w, df) for w, df in present if df < common] or present
    return {w: math.log(1 + (rows - df + 0.5) / (df + 0.5)) for w, df in kept}
