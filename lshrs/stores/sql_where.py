"""The filter language (lshrs/where.py) compiled to SQLite's JSON1 functions (pg_where.py: Postgres jsonb).

Each test compares JSON types before values, as `where.matches` does, and
comes out as a strict true/false (``COALESCE(..., false)``), so that ``NOT``
of a test on a missing key or a NULL metadata column is true, as in Python.
Keys and operands are always parameters. A filter the SQL cannot express
exactly compiles to None, and the caller scans in Python instead: ``$ilike``
and ``$icontains`` (SQL engines and Python fold case differently) and, on
SQLite, keys holding a quote or a backslash (they cannot be spelled in a
JSON path) and whole lists or objects as operands.
"""

from __future__ import annotations

from typing import Any

from lshrs import where as w

_UNSAFE_PATH = set('"\\')


# -- SQLite ---------------------------------------------------------------------------


def sqlite(expr: w.Where, column: str) -> tuple[str, list[Any]] | None:
    """(condition, parameters) on the JSON text in `column` (an identifier already quoted), or None."""
    if w.ops(expr) & set(w.PYTHON_ONLY) or any(set(k) & _UNSAFE_PATH for k in w.keys(expr)):
        return None
    if any(w.kind(v) in ("array", "object") for v in w.operands(expr)):
        return None  # SQLite hands back JSON text for these, whose spelling of numbers differs
    return _sqlite(expr, column)


def _sqlite(expr: w.Where, column: str) -> tuple[str, list[Any]]:
    if isinstance(expr, w.Not):
        inner, params = _sqlite(expr.part, column)
        return f"NOT ({inner})", params
    if isinstance(expr, (w.AllOf, w.AnyOf)):
        if not expr.parts:
            return ("1" if isinstance(expr, w.AllOf) else "0"), []
        parts = [_sqlite(part, column) for part in expr.parts]
        joiner = " AND " if isinstance(expr, w.AllOf) else " OR "
        return joiner.join(f"({c})" for c, _ in parts), [p for _, params in parts for p in params]
    condition, params = _sqlite_test(expr, column, f'$."{expr.key}"')
    return f"COALESCE(({condition}), 0)", params


def _sqlite_test(test: w.Test, column: str, path: str) -> tuple[str, list[Any]]:
    kind, value = f"json_type({column}, ?)", f"json_extract({column}, ?)"
    op, operand = test.op, test.value
    if op == "$exists":
        return f"{kind} IS {'NOT ' if operand else ''}NULL", [path]
    if op in ("$eq", "$ne"):
        condition, params = _sqlite_equal(kind, value, path, operand)
        return (condition, params) if op == "$eq" else (f"NOT COALESCE(({condition}), 0)", params)
    if op in w.LISTS:
        tests = [_sqlite_equal(kind, value, path, v) for v in operand]
        condition = " OR ".join(f"({c})" for c, _ in tests) or "0"
        params = [p for _, ps in tests for p in ps]
        return (condition, params) if op == "$in" else (f"NOT COALESCE(({condition}), 0)", params)
    if op == "$contains":
        item, params = _sqlite_equal("e.type", "e.value", None, operand)
        within = f"{kind} = 'array' AND EXISTS (SELECT 1 FROM json_each({column}, ?) AS e WHERE {item})"
        if not isinstance(operand, str):
            return within, [path, path, *params]
        substring = f"{kind} = 'text' AND instr({value}, ?) > 0"
        return f"({within}) OR ({substring})", [path, path, *params, path, path, operand]
    if op == "$size":
        return f"{kind} = 'array' AND json_array_length({column}, ?) = ?", [path, path, operand]
    if op == "$like":
        return f"{kind} = 'text' AND {value} GLOB ?", [path, path, _glob(operand)]
    sign = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}[op]
    types = "IN ('integer', 'real')" if w.kind(operand) == "number" else "= 'text'"
    return f"{kind} {types} AND {value} {sign} ?", [path, path, operand]


def _sqlite_equal(kind: str, value: str, path: str | None, operand: Any) -> tuple[str, list[Any]]:
    """JSON equality of the value at `path` (or of a json_each row when path is None) and a scalar."""
    at = [] if path is None else [path]
    if operand is None:
        return f"{kind} = 'null'", at
    if isinstance(operand, bool):
        return f"{kind} = '{'true' if operand else 'false'}'", at
    if isinstance(operand, str):
        return f"{kind} = 'text' AND {value} = ?", [*at, *at, operand]
    return f"{kind} IN ('integer', 'real') AND {value} = ?", [*at, *at, operand]


def _glob(pattern: str) -> str:
    """A LIKE pattern as a GLOB pattern (case-sensitive, as `where.like_regex`): % is *, _ is ?."""
    out = []
    for c in pattern:
        out.append("*" if c == "%" else "?" if c == "_" else f"[{c}]" if c in "*?[" else c)
    return "".join(out)
