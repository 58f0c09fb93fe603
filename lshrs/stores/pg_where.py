"""The filter language (lshrs/where.py) compiled to Postgres jsonb SQL; see sql_where.py for the rules.

Apart from the SQLite compiler so that only the Postgres store needs psycopg:
`import lshrs` and the SQLite default work without it.
"""

from __future__ import annotations

import json
from typing import Any

from psycopg import sql

from lshrs import where as w


def postgres(expr: w.Where, column: sql.Composable) -> tuple[sql.Composed, list[Any]] | None:
    """(condition, parameters) on the jsonb expression `column`, or None."""
    if w.ops(expr) & set(w.PYTHON_ONLY):
        return None
    return _postgres(expr, column)


def _postgres(expr: w.Where, column: sql.Composable) -> tuple[sql.Composed, list[Any]]:
    if isinstance(expr, w.Not):
        inner, params = _postgres(expr.part, column)
        return sql.SQL("NOT ({})").format(inner), params
    if isinstance(expr, (w.AllOf, w.AnyOf)):
        if not expr.parts:
            return sql.Composed([sql.SQL("true" if isinstance(expr, w.AllOf) else "false")]), []
        parts = [_postgres(part, column) for part in expr.parts]
        joiner = sql.SQL(" AND " if isinstance(expr, w.AllOf) else " OR ")
        condition = joiner.join(sql.SQL("({})").format(c) for c, _ in parts)
        return sql.Composed([condition]), [p for _, params in parts for p in params]
    condition, params = _postgres_test(expr, column)
    return sql.SQL("COALESCE(({}), false)").format(condition), params


def _postgres_test(test: w.Test, column: sql.Composable) -> tuple[sql.Composed, list[Any]]:
    key, op, operand = test.key, test.op, test.value
    at = sql.SQL("({} -> %s)").format(column)
    text = sql.SQL("({} ->> %s)").format(column)
    kind = sql.SQL("jsonb_typeof({} -> %s)").format(column)
    if op == "$exists":
        return sql.SQL("({} -> %s) IS {}NULL").format(column, sql.SQL("NOT " if operand else "")), [key]
    if op in ("$eq", "$ne"):
        # containment first: a GIN index on the column answers it; the equality keeps JSON's semantics exact
        equal = sql.SQL("{} @> %s::jsonb AND {} = %s::jsonb").format(column, at)
        params: list[Any] = [json.dumps({key: operand}), key, json.dumps(operand)]
        return (equal, params) if op == "$eq" else (sql.SQL("NOT COALESCE(({}), false)").format(equal), params)
    if op in w.LISTS:
        condition = sql.SQL("{} = ANY(%s::jsonb[])").format(at)
        params = [key, [json.dumps(v) for v in operand]]  # one text[] parameter, cast to jsonb[]
        if op == "$in":
            return condition, params
        return sql.SQL("NOT COALESCE(({}), false)").format(condition), params
    if op == "$contains":
        if isinstance(operand, str):
            check = sql.SQL(
                "CASE {} WHEN 'array' THEN {} @> %s::jsonb WHEN 'string' THEN strpos({}, %s) > 0 ELSE false END"
            ).format(kind, at, text)
            return check, [key, key, json.dumps([operand]), key, operand]
        check = sql.SQL("CASE WHEN {} = 'array' THEN {} @> %s::jsonb ELSE false END").format(kind, at)
        return check, [key, key, json.dumps([operand])]
    if op == "$size":
        check = sql.SQL("CASE WHEN {} = 'array' THEN jsonb_array_length({}) = %s ELSE false END").format(kind, at)
        return check, [key, key, operand]
    if op == "$like":
        check = sql.SQL("CASE WHEN {} = 'string' THEN {} LIKE %s ESCAPE '' ELSE false END").format(kind, text)
        return check, [key, key, operand]
    sign = sql.SQL({"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}[op])
    if w.kind(operand) == "number":
        numbers = sql.SQL("CASE WHEN {} = 'number' THEN ({})::numeric {} %s::numeric ELSE false END")
        return numbers.format(kind, text, sign), [key, key, repr(operand)]
    strings = sql.SQL("CASE WHEN {} = 'string' THEN {} COLLATE \"C\" {} %s ELSE false END")
    return strings.format(kind, text, sign), [key, key, operand]
