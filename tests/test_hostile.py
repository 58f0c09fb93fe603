"""Hostile input: names, identifiers, texts and metadata that try to escape, and Redis with AUTH and TLS.

Everything runs against real servers: the session's Redis and Postgres, SQLite
files, and redis-server processes started here with ``--requirepass``, ACL
users and TLS.
"""

from __future__ import annotations

import datetime
import io
import re
import shutil
import sqlite3
import string
import subprocess
import sys
import tokenize
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
import redis
import redis.asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql
from servers import free_port, wait_until

from lshrs import LSHRS, MemoryStore, PostgresStore, SQLiteStore

ROOT = Path(__file__).resolve().parents[1]
DIM = 8


def unit_vectors(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


# -- no code or objects from stored data ----------------------------------

# Code (comments and string literals blanked first) that turns bytes into objects or runs text as code.
UNSAFE_CODE = re.compile(
    r"\b(?:c?[Pp]ickle|cloudpickle|dill|marshal|shelve|joblib)\b"
    r"|\b(?:eval|exec)\s*\("
    r"|\byaml\s*\.\s*(?:unsafe_|full_)?load"
    r"|\btorch\s*\.\s*load\b"
    r"|\ballow_pickle\s*=\s*True"
)
# (path from the repo root, matched text) -> why it is safe. Empty: nothing in the package needs one.
ALLOWED: dict[tuple[str, str], str] = {}
_LITERAL_TOKENS = {tokenize.COMMENT, tokenize.STRING, getattr(tokenize, "FSTRING_MIDDLE", tokenize.STRING)}


def unsafe_uses(source: str) -> list[str]:
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    code = " ".join(tok.string for tok in tokens if tok.type not in _LITERAL_TOKENS)
    return [match.group(0) for match in UNSAFE_CODE.finditer(code)]


def package_sources() -> list[Path]:
    dirs = (ROOT / "lshrs", ROOT / "integrations")
    return [p for d in dirs for p in sorted(d.rglob("*.py")) if not any(".egg-info" in part for part in p.parts)]


@pytest.mark.parametrize(
    "snippet",
    ["import pickle", "from marshal import loads", "x = eval(s)", "exec (code)", "yaml.load(f)", "yaml.unsafe_load(f)",
     "np.load(p, allow_pickle=True)", "torch.load(p)", "import dill", "shelve.open(p)", "import cPickle"],
)  # fmt: skip
def test_the_scanner_sees_each_unsafe_construct(snippet):
    assert unsafe_uses(snippet)


def test_the_scanner_ignores_prose_and_lookalike_names():
    prose = '"""Never pickle or eval( anything."""  # no exec( here\nx = "yaml.load("\nretrieval(q)\nnp.load(p)\n'
    assert unsafe_uses(prose) == []


def test_no_pickle_eval_exec_marshal_or_yaml_load_in_the_package():
    files = package_sources()
    names = {p.relative_to(ROOT).as_posix() for p in files}
    assert {"lshrs/index.py", "lshrs/buckets/scripts.py", "lshrs/stores/postgres.py"} <= names
    assert any(n.startswith("integrations/langchain/") for n in names)
    assert any(n.startswith("integrations/llamaindex/") for n in names)
    found = {}
    for path in files:
        rel = path.relative_to(ROOT).as_posix()
        hits = [hit for hit in unsafe_uses(path.read_text()) if (rel, hit) not in ALLOWED]
        if hits:
            found[rel] = hits
    assert found == {}


def test_index_definition_in_redis_is_short_text_and_raw_floats(make_index, redis_client, name):
    lsh = make_index(num_tables=3, num_bits=5)
    lsh.ingest(vectors=unit_vectors(6), ids=range(6))
    meta = redis_client.hgetall(f"lshrs:{name}:meta")
    planes = meta.pop(b"planes")
    assert len(planes) == DIM * 3 * 5 * 4  # dim x (tables * bits) little-endian float32, nothing else
    assert np.isfinite(np.frombuffer(planes, "<f4")).all()
    assert meta and all(v.isascii() and v.decode().isprintable() and len(v) <= 64 for v in meta.values()), meta


# -- hostile SQL identifiers -----------------------------------------------


class Database:
    """A fresh SQLite file or the session's Postgres, plus a canary table hostile names must not touch."""

    def __init__(self, kind: str, request: pytest.FixtureRequest, tmp_path: Path, name: str) -> None:
        self.kind = kind
        self.canary = f"canary_{name}"
        self.stores: list[Any] = []
        if kind == "sqlite":
            self.path = tmp_path / "docs.sqlite3"
            with sqlite3.connect(self.path) as conn:
                conn.execute(f'CREATE TABLE "{self.canary}" (v TEXT)')
                conn.execute(f"INSERT INTO \"{self.canary}\" VALUES ('alive')")
            conn.close()
        elif kind == "postgres":
            self.dsn = request.getfixturevalue("postgres_dsn")
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                conn.execute(sql.SQL("CREATE TABLE {} (v text)").format(sql.Identifier(self.canary)))
                conn.execute(sql.SQL("INSERT INTO {} VALUES ('alive')").format(sql.Identifier(self.canary)))
        self.before = self.tables()

    def store(self, **kwargs: Any) -> Any:
        if self.kind == "memory":
            made: Any = MemoryStore()
        elif self.kind == "sqlite":
            made = SQLiteStore(self.path, **kwargs)
        else:
            made = PostgresStore(self.dsn, **kwargs)
        self.stores.append(made)
        return made

    def tables(self) -> set[tuple[str, str]]:
        if self.kind == "sqlite":
            with sqlite3.connect(self.path) as conn:
                found = conn.execute("SELECT 'main', name FROM sqlite_master WHERE type = 'table'").fetchall()
            conn.close()
            return set(found)
        if self.kind == "postgres":
            query = (
                "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind = 'r' AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'"
            )
            with psycopg.connect(self.dsn) as conn:
                return set(conn.execute(query).fetchall())
        return set()

    def assert_untouched(self, *created: str | tuple[str, str]) -> None:
        """The canary still holds its row, and the only new tables are `created` (default schema unless given)."""
        if self.kind == "memory":
            return
        default = "main" if self.kind == "sqlite" else "public"
        expected = {(default, t) if isinstance(t, str) else t for t in created}
        assert self.tables() - self.before == expected
        assert (default, self.canary) in self.tables()
        if self.kind == "sqlite":
            with sqlite3.connect(self.path) as conn:
                rows = conn.execute(f'SELECT v FROM "{self.canary}"').fetchall()
            conn.close()
        else:
            with psycopg.connect(self.dsn) as conn:
                rows = conn.execute(sql.SQL("SELECT v FROM {}").format(sql.Identifier(self.canary))).fetchall()
        assert rows == [("alive",)]

    def close(self) -> None:
        for made in self.stores:
            if hasattr(made, "close"):
                made.close()


@pytest.fixture
def database(request, tmp_path, name):
    db = Database(request.param, request, tmp_path, name)
    yield db
    db.close()


def round_trip(lsh: LSHRS) -> None:
    """Every verb that reaches the store: write, replace, read, query, find, scan, delete."""
    vectors = unit_vectors(3, seed=1)
    lsh.ingest(texts=["one", "two", "three"], vectors=vectors, ids=[1, 2, 3], metadata=[{"k": "a"}, {"k": "b"}, None])
    best = lsh.query(vectors[1], top_k=3)[0]
    assert (best.id, best.text, best.metadata) == (2, "two", {"k": "b"})
    assert lsh.find({"k": "a"}).tolist() == [1]
    lsh.ingest(texts=["TWO"], vectors=vectors[1:2] * 2, ids=[2])
    assert lsh.get([2, 1]).texts == ["TWO", "one"]
    assert lsh.delete([1, 99]) == 1
    assert lsh.store.count() == 2 and lsh.count() == 2
    assert [rows.ids.tolist() for rows in lsh.store.scan(batch_size=1)] == [[2], [3]]
    assert [h.id for h in lsh.query(vectors[2], top_k=5)] == [3, 2]


IDENTIFIERS = [
    'x"; DROP TABLE "{canary}"; --',
    "x'; DROP TABLE {canary}; --",
    'say "hi"',
    "it's",
    '"',
    "'",
    "semi;colon",
    "two words",
    " padded ",
    "tab\tnew\nline",
    "-- comment",
    "/* comment */",
    "select",
    "%s",
    "%(x)s",
    "50% off",
    "?",
    "$1",
    ":name",
    "back\\slash",
    "ünïcödé",
    "名前",
    "🙂",
]


@pytest.mark.parametrize("database", ["sqlite", "postgres"], indirect=True)
@pytest.mark.parametrize("template", IDENTIFIERS, ids=ascii)
def test_hostile_identifiers_work_and_touch_nothing_else(database, make_index, name, template):
    ident = template.replace("{canary}", database.canary)
    table = ident + name[-5:]
    assert len(table.encode()) <= 63
    store = database.store(
        table=table,
        id_column=ident,
        vector_column=ident + " vec",
        text_column=ident + " txt",
        metadata_column=ident + " meta",
    )
    round_trip(make_index(store=store))
    database.assert_untouched(table)


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_sqlite_takes_very_long_identifiers(database, make_index):
    long = "ü'\"; -- " * 2000
    store = database.store(table=long, id_column=long + "i", vector_column=long + "v", text_column=long + "t")
    round_trip(make_index(store=store))
    database.assert_untouched(long)


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
def test_postgres_schema_with_a_hostile_name(database, make_index, name):
    schema = f'sch"; DROP TABLE "{database.canary}"; --'
    with psycopg.connect(database.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    database.before = database.tables()
    round_trip(make_index(store=database.store(schema=schema, table=name + "'; --")))
    database.assert_untouched((schema, name + "'; --"))


def exactly(n_bytes: int, prefix: str) -> str:
    """A name of exactly n_bytes UTF-8 bytes, mostly two-byte characters."""
    rest = n_bytes - len(prefix.encode())
    return prefix + "é" * (rest // 2) + "x" * (rest % 2)


ROLES = ["table", "schema", "id_column", "vector_column", "text_column", "metadata_column"]


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
@pytest.mark.parametrize("role", ROLES)
def test_postgres_refuses_names_it_would_truncate(database, name, role):
    """Postgres cuts identifiers to 63 bytes without an error: two long names would share one table."""
    kwargs = {"table": name, role: exactly(64, name)}
    with pytest.raises(ValueError, match=f"{role}: Postgres identifiers hold at most 63 bytes"):
        database.store(**kwargs)
    database.assert_untouched()


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
def test_postgres_takes_names_of_exactly_63_bytes(database, make_index, name):
    table = exactly(63, name)
    columns = {f"{role}_column": exactly(63, role) for role in ("id", "vector", "text", "metadata")}
    round_trip(make_index(store=database.store(table=table, **columns)))
    database.assert_untouched(table)


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
def test_postgres_table_names_that_shadow_the_catalog_need_a_schema(database, make_index, name):
    """Unqualified, "pg_class" would be created in public but read from pg_catalog (searched first)."""
    for table in ("pg_class", "pg_largeobject"):
        with pytest.raises(ValueError, match="pg_catalog"):
            database.store(table=table)
    database.assert_untouched()
    round_trip(make_index(store=database.store(table=f"pg_{name}", schema="public")))
    database.assert_untouched(f"pg_{name}")


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
@pytest.mark.parametrize("table", ["sqlite_master", "sqlite_schema", "SQLITE_sequence"])
def test_sqlite_refuses_its_reserved_table_names(database, table):
    with pytest.raises(sqlite3.OperationalError, match="reserved for internal use"):
        database.store(table=table)
    database.assert_untouched()


@pytest.mark.parametrize("database", ["sqlite", "postgres"], indirect=True)
@pytest.mark.parametrize(
    "role, bad",
    [(role, bad) for role in ROLES[:1] + ROLES[2:] for bad in ("nul\x00byte", "lone \ud800 surrogate")]
    + [(role, "") for role in ("table", "id_column", "vector_column")],  # '' for text/metadata means "no column"
    ids=ascii,
)
def test_identifiers_no_database_can_hold_are_refused(database, role, bad):
    with pytest.raises(ValueError, match="non-empty string without NUL|lone surrogate"):
        database.store(**{"table": "docs", role: bad})
    database.assert_untouched()


def test_a_bad_identifier_creates_no_sqlite_file(tmp_path):
    with pytest.raises(ValueError):
        SQLiteStore(tmp_path / "sub" / "docs.sqlite3", table="ok", text_column="")
    assert not (tmp_path / "sub").exists()


# -- hostile document texts and metadata -----------------------------------

HOSTILE_TEXTS = [
    "'; DROP TABLE {canary}; --",
    'Robert"); DROP TABLE "{canary}";--',
    "%s %(x)s {} {0} ? $1 :name",
    "\\x00 \\u0000 \\\\ backslashes, not NULs",
    "line\nbreak\r\n\ttab\x0b\x0c",
    "ünïcödé 名前 🙂 \u202e right-to-left \ufeff bom",
    "$$ dollar quoting $$ E'\\\\'",
    "\x1b[31m ansi \x07 bell \x7f",
    "",
    " ",
]
HOSTILE_METADATA: list[dict[str, Any] | None] = [
    {"'; DROP TABLE {canary}; --": "x", 'k"ey': "v\"'", "\\": "\\\\"},
    {"nested": {"a": [1, "'; --", None, True, 1.5, {"$.b": "c"}]}, "": ""},
    {"\\u0000": "an escaped backslash, then u0000: not a NUL"},
    {"big": 2**63 - 1, "small": -(2**63), "float": 0.1},
    {"名前": "🙂", "q": "'; DROP TABLE {canary}; --"},
    None,
    {"k": {"deep": [[[[[[["x"]]]]]]]}},
    {},
    {"true": False, "null": None},
    {"%s": "%(x)s"},
]


def with_canary(value: Any, canary: str) -> Any:
    if isinstance(value, str):
        return value.replace("{canary}", canary)
    if isinstance(value, dict):
        return {with_canary(k, canary): with_canary(v, canary) for k, v in value.items()}
    return value


@pytest.mark.parametrize("database", ["memory", "sqlite", "postgres"], indirect=True)
def test_hostile_texts_and_metadata_round_trip(database, make_index, name):
    texts = [with_canary(t, database.canary) for t in HOSTILE_TEXTS]
    metas = [with_canary(m, database.canary) for m in HOSTILE_METADATA]
    vectors = unit_vectors(len(texts), seed=2)
    ids = np.arange(100, 100 + len(texts))
    lsh = make_index(store=database.store(table=name))
    lsh.ingest(texts=texts, vectors=vectors, ids=ids, metadata=metas)
    rows = lsh.get(ids)
    assert rows.texts == texts and rows.metadata == metas
    for i, hits in enumerate(lsh.query_many(vectors, top_k=1)):
        assert (hits[0].id, hits[0].text, hits[0].metadata) == (ids[i], texts[i], metas[i])
    sql_key = f"'; DROP TABLE {database.canary}; --"
    assert lsh.find({sql_key: "x"}).tolist() == [100]  # hostile key and value, bound not spliced
    assert lsh.find({"q": sql_key}).tolist() == [104]
    assert lsh.find({"%s": "%(x)s"}).tolist() == [109]
    database.assert_untouched(name)


def snapshot(lsh: LSHRS, ids: list[int]) -> tuple[Any, ...]:
    rows = lsh.get(ids)
    return lsh.store.count(), lsh.count(), rows.ids.tolist(), rows.texts, rows.metadata


def test_sqlite_keeps_nul_characters(tmp_path, make_index, name):
    lsh = make_index(store=SQLiteStore(tmp_path / "docs.sqlite3", table=name))
    vectors = unit_vectors(2, seed=3)
    texts, metas = ["a\x00b", "\x00"], [{"k\x00": "v\x00"}, {"list": ["\x00", "x"]}]
    lsh.ingest(texts=texts, vectors=vectors, ids=[1, 2], metadata=metas)
    rows = lsh.get([1, 2])
    assert rows.texts == texts and rows.metadata == metas
    assert lsh.query(vectors[0], top_k=1)[0].text == "a\x00b"


NUL_INPUTS = [
    (["a\x00b"], None, "texts: Postgres text cannot hold NUL"),
    (["ok"], [{"k": "v\x00"}], "metadata: Postgres jsonb cannot hold NUL"),
    (["ok"], [{"k\x00": 1}], "metadata: Postgres jsonb cannot hold NUL"),
    (["ok"], [{"n": ["x", {"deep": "\x00"}]}], "metadata: Postgres jsonb cannot hold NUL"),
]


@pytest.mark.parametrize("texts, metadata, match", NUL_INPUTS)
async def test_postgres_refuses_nul_before_writing(postgres_dsn, make_index, name, texts, metadata, match):
    store = PostgresStore(postgres_dsn, table=name)
    lsh = make_index(store=store)
    vectors = unit_vectors(3, seed=4)
    lsh.ingest(texts=["keep"], vectors=vectors[:1], ids=[1])
    before = snapshot(lsh, [1, 2, 3])
    meta = None if metadata is None else [None, *metadata]
    with pytest.raises(ValueError, match=match):
        lsh.ingest(texts=["fine", *texts], vectors=vectors[1:], ids=[2, 3], metadata=meta)
    assert snapshot(lsh, [1, 2, 3]) == before
    with pytest.raises(ValueError, match=match):
        await lsh.aingest(texts=["fine", *texts], vectors=vectors[1:], ids=[2, 3], metadata=meta)
    assert snapshot(lsh, [1, 2, 3]) == before
    await lsh.aclose()
    store.close()


def test_postgres_nul_late_in_a_batch_writes_nothing(postgres_dsn, make_index, name):
    store = PostgresStore(postgres_dsn, table=name)
    lsh = make_index(store=store, batch_size=2)
    try:
        with pytest.raises(ValueError, match="NUL"):
            lsh.ingest(texts=["a", "b", "c", "d\x00"], vectors=unit_vectors(4), ids=[1, 2, 3, 4])
        assert store.count() == 0 and lsh.count() == 0
    finally:
        store.close()


@pytest.mark.parametrize("database", ["memory", "sqlite", "postgres"], indirect=True)
def test_five_megabyte_texts_round_trip(database, make_index, name):
    big = ("ünï名🙂'\"; DROP -- %s \\ " * 300_000)[: 5 * 2**20]
    meta = {"blob": "m'\"🙂" * 250_000}
    lsh = make_index(store=database.store(table=name))
    vectors = unit_vectors(2, seed=5)
    lsh.ingest(texts=[big, "small"], vectors=vectors, ids=[1, 2], metadata=[meta, None])
    hit = lsh.query(vectors[0], top_k=1)[0]
    assert hit.id == 1 and hit.text == big and hit.metadata == meta
    assert lsh.get([1]).texts == [big]


SURROGATES = [
    (["ok", "\ud800"], None, "texts: item 1 holds a lone surrogate"),
    (["ok", "x\udfffy"], None, "texts: item 1 holds a lone surrogate"),
    (["ok", "ok"], [None, {"k": "\ud83d"}], "metadata: row 1 holds a lone surrogate"),
    (["ok", "ok"], [None, {"\udc80": 1}], "metadata: row 1 holds a lone surrogate"),
    (["ok", "ok"], [None, {"k": ["a", {"b": "\udbff"}]}], "metadata: row 1 holds a lone surrogate"),
]


@pytest.mark.parametrize("database", ["memory", "sqlite", "postgres"], indirect=True)
@pytest.mark.parametrize("texts, metadata, match", SURROGATES, ids=ascii)
def test_lone_surrogates_are_refused_before_any_write(database, make_index, name, texts, metadata, match):
    """A lone surrogate is a valid Python str but no UTF-8 store (SQLite, Postgres, JSON) can keep it."""
    lsh = make_index(store=database.store(table=name), batch_size=1)
    lsh.ingest(texts=["keep"], vectors=unit_vectors(1), ids=[1])
    before = snapshot(lsh, [1, 2, 3])
    with pytest.raises(ValueError, match=match):
        lsh.ingest(texts=texts, vectors=unit_vectors(2, seed=6), ids=[2, 3], metadata=metadata)
    assert snapshot(lsh, [1, 2, 3]) == before


def circular() -> dict[str, Any]:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    return loop


def deeply_nested(depth: int = 100_000) -> dict[str, Any]:
    node: dict[str, Any] = {}
    for _ in range(depth):
        node = {"k": node}
    return node


NOT_JSON = [
    ({"s": {1, 2}}, TypeError, "row 2 is not JSON-serialisable"),
    ({"b": b"bytes"}, TypeError, "row 2 is not JSON-serialisable"),
    ({"o": object()}, TypeError, "row 2 is not JSON-serialisable"),
    ({"d": datetime.date(2024, 1, 1)}, TypeError, "row 2 is not JSON-serialisable"),
    ({"c": 1j}, TypeError, "row 2 is not JSON-serialisable"),
    ({("tuple", "key"): 1}, TypeError, "row 2 has the key \\(.tuple., .key.\\) \\(tuple\\); metadata keys are strings"),
    ({"a": np.float32(1.0)}, TypeError, "row 2 is not JSON-serialisable"),
    ({"nan": float("nan")}, ValueError, "row 2 is not valid JSON"),
    ({"inf": [float("-inf")]}, ValueError, "row 2 is not valid JSON"),
    (circular(), ValueError, "row 2 is not valid JSON"),
    (deeply_nested(), ValueError, "row 2 is not valid JSON"),
]
NOT_JSON_IDS = "set bytes object date complex tuple-key numpy-float nan inf circular deep".split()


@pytest.mark.parametrize("database", ["memory", "sqlite", "postgres"], indirect=True)
@pytest.mark.parametrize("bad, exc, match", NOT_JSON, ids=NOT_JSON_IDS)
def test_metadata_json_cannot_hold_is_refused_before_any_write(database, make_index, name, bad, exc, match):
    """Stores keep metadata as JSON: a bad last row must not let the rows before it (batch_size=1) through."""
    lsh = make_index(store=database.store(table=name), batch_size=1)
    with pytest.raises(exc, match=match):
        lsh.ingest(texts=list("abc"), vectors=unit_vectors(3), ids=[1, 2, 3], metadata=[{"ok": 1}, None, bad])
    assert lsh.store.count() == 0 and lsh.count() == 0


# -- index names -----------------------------------------------------------

NAME_CHARS = string.ascii_letters + string.digits + "_.-"
BAD_NAMES = [
    "", "*", "a*", "a?", "[ab]", "a]", "a[", "a\\", ":", "a:b", "lshrs:x", "{a}", "a{", "b}", "{", " ", "a b",
    " a", "a\t", "a\n", "a\x00", "é", "名前", "🙂", "a/b", "a'b", 'a"b', "a,b", "a;b", "^a", "a!", "x" * 65,
]  # fmt: skip


@pytest.mark.parametrize("bad", BAD_NAMES, ids=ascii)
def test_names_that_could_reach_other_keys_are_refused(redis_client, bad):
    """Glob characters, the ':' separator and '{}' (a Redis Cluster hash tag) never reach a key name."""
    keys = redis_client.dbsize()
    with pytest.raises(ValueError, match=r"name: expected 1-64 characters from \[A-Za-z0-9_.-\]"):
        LSHRS(name=bad, redis=redis_client, store=MemoryStore(), dim=4)
    assert redis_client.dbsize() == keys


@pytest.mark.parametrize("bad", [None, 1, b"abc", ["a"]], ids=ascii)
def test_names_must_be_strings(redis_client, bad):
    with pytest.raises(TypeError, match="name: expected str"):
        LSHRS(name=bad, redis=redis_client, store=MemoryStore())


@pytest.mark.parametrize("odd", ["-", ".", "_", "..", "0", "x" * 64])
def test_odd_but_allowed_names_work(make_index, redis_client, odd):
    lsh = make_index(name=odd)
    lsh.ingest(texts=list("abc"), vectors=unit_vectors(3), ids=[1, 2, 3])
    assert [h.id for h in lsh.query(unit_vectors(3)[2], top_k=1)] == [3]
    assert {k.decode().split(":")[1] for k in redis_client.scan_iter(match=f"lshrs:{odd}:*")} == {odd}
    assert lsh.clear() > 0
    assert list(redis_client.scan_iter(match=f"lshrs:{odd}:*")) == []


def index_keys(client: redis.Redis, name: str) -> dict[bytes, Any]:
    """Every key of the index, found by the documented prefix, with its value (a hash as a dict)."""
    keys = list(client.scan_iter(match=f"lshrs:{name}:*", count=1000))
    return {key: client.hgetall(key) if client.type(key) == b"hash" else client.get(key) for key in keys}


def keys_by_segment(client: redis.Redis, names: list[str]) -> dict[str, set[bytes]]:
    """The keys whose second ':'-separated segment is each name (no glob involved)."""
    found: dict[str, set[bytes]] = {n: set() for n in names}
    for key in client.scan_iter(match="lshrs:*", count=1000):
        segment = key.split(b":")[1].decode()
        if segment in found:
            found[segment].add(key)
    return found


def test_clearing_an_index_leaves_similar_names_intact(make_index, redis_client, name):
    names = [name, name + "-b", name + ".b", name + "b", name + "_b", name[:-1]]
    vectors = unit_vectors(5, seed=7)
    for target in names:
        indexes = {n: make_index(name=n) for n in names}
        for i, lsh in enumerate(indexes.values()):
            lsh.ingest(texts=[f"{i}-{j}" for j in range(5)], vectors=vectors, ids=range(10 * i, 10 * i + 5))
        by_segment = keys_by_segment(redis_client, names)
        assert all(set(index_keys(redis_client, n)) == by_segment[n] for n in names)  # SCAN pattern == prefix
        others = {n: index_keys(redis_client, n) for n in names if n != target}
        results = {n: indexes[n].query_many(vectors, top_k=3) for n in others}
        assert indexes[target].clear() > 0
        assert index_keys(redis_client, target) == {}
        for n, keys in others.items():
            assert index_keys(redis_client, n) == keys, f"clearing {target!r} touched {n!r}"
            assert indexes[n].query_many(vectors, top_k=3) == results[n]
        for n in others:
            indexes[n].clear()


@pytest.fixture(scope="module")
def spare_db(redis_url):
    """Another database of the session's Redis, so generated names cannot meet other tests' indexes."""
    client = redis.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/13")
    yield client
    client.close()


names = st.text(NAME_CHARS, min_size=1, max_size=64)


@st.composite
def name_pairs(draw: st.DrawFn) -> tuple[str, str]:
    first = draw(names)
    kind = draw(st.sampled_from(["any", "longer", "shorter"]))
    if kind == "longer":
        second = (first + draw(names))[:64]
    elif kind == "shorter" and len(first) > 1:
        second = first[: draw(st.integers(1, len(first) - 1))]
    else:
        second = draw(names)
    return first, second


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pair=name_pairs())
def test_any_two_allowed_names_never_share_a_key(spare_db, pair):
    first, second = pair
    if first == second:
        return
    one = LSHRS(name=first, redis=spare_db, store=MemoryStore(), num_tables=2, num_bits=3)
    two = LSHRS(name=second, redis=spare_db, store=MemoryStore(), num_tables=2, num_bits=3)
    try:
        vectors = unit_vectors(3, seed=8)
        one.ingest(vectors=vectors, ids=[1, 2, 3])
        two.ingest(vectors=vectors, ids=[4, 5, 6])
        kept = index_keys(spare_db, second)
        assert kept and set(kept).isdisjoint(index_keys(spare_db, first))
        assert one.clear() > 0
        assert index_keys(spare_db, second) == kept
        assert sorted(h.id for h in two.query(vectors[0], top_k=3)) == [4, 5, 6]
    finally:
        one.clear()
        two.clear()


@settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(candidate=st.text(max_size=70))
def test_exactly_the_documented_names_are_accepted(spare_db, candidate):
    allowed = 1 <= len(candidate) <= 64 and all(c in NAME_CHARS for c in candidate)
    if allowed:
        assert LSHRS(name=candidate, redis=spare_db, store=MemoryStore()).name == candidate
    else:
        with pytest.raises(ValueError, match="name"):
            LSHRS(name=candidate, redis=spare_db, store=MemoryStore())


def test_default_stores_of_names_differing_in_case_are_apart(redis_client, tmp_path, name):
    upper = LSHRS(name=name.upper(), redis=redis_client, data_dir=tmp_path)
    lower = LSHRS(name=name, redis=redis_client, data_dir=tmp_path)
    try:
        upper.ingest(texts=list("abc"), vectors=unit_vectors(3), ids=[1, 2, 3])
        assert lower.store.count() == 0
        assert lower.query(unit_vectors(3)[0], top_k=3) == []
    finally:
        upper.clear()
        lower.clear()


# -- Redis AUTH and TLS ----------------------------------------------------

PASSWORD = "s3cret:@/?#"  # URL-special characters, percent-encoded in the URLs below
QUOTED = "s3cret%3A%40%2F%3F%23"


class RedisProcess:
    """A redis-server with extra options on a free loopback port, logging to a file."""

    def __init__(self, workdir: Path, *options: str, tls: bool = False) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("no redis-server on PATH")
        self.port = free_port()
        self.log = workdir / "redis.log"
        ports = ["--port", "0", "--tls-port", str(self.port)] if tls else ["--port", str(self.port)]
        args = [binary, *ports, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([*args, *options], stdout=log, stderr=subprocess.STDOUT)

    def wait(self, client: redis.Redis) -> None:
        try:
            wait_until(lambda: self.proc.poll() is not None or client.ping(), timeout=20)
        finally:
            client.close()

    def exited(self) -> str | None:
        """The end of the log if the server has stopped, else None."""
        return None if self.proc.poll() is None else self.log.read_text(errors="replace").strip()[-300:]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture(scope="module")
def auth_redis(tmp_path_factory):
    """A password for the default user; ACL user alice may touch lshrs:*, bob only the index 'bobs'."""
    server = RedisProcess(
        tmp_path_factory.mktemp("auth"),
        "--requirepass", PASSWORD,
        "--user", "alice", "on", ">wonderland", "~lshrs:*", "+@all", "-@dangerous",
        "--user", "bob", "on", ">builder", "~lshrs:bobs:*", "+@all", "-@dangerous",
    )  # fmt: skip
    server.wait(redis.Redis(port=server.port, password=PASSWORD))
    assert server.exited() is None, server.exited()
    yield server.port
    server.stop()


async def exercise(lsh: LSHRS) -> None:
    """Every kind of Redis traffic an index makes, sync and async: create, write, read, delete, clear."""
    vectors = unit_vectors(4, seed=9)
    lsh.ingest(texts=list("abcd"), vectors=vectors, ids=[1, 2, 3, 4])
    assert [h.id for h in lsh.query(vectors[1], top_k=1)] == [2]
    assert 2 in [h.id for h in lsh.query(vectors[1], top_k=4, rerank=False)]
    await lsh.aingest(texts=["e"], vectors=unit_vectors(1, seed=10), ids=[5])
    assert [h.id for h in await lsh.aquery(vectors[2], top_k=1)] == [3]
    assert 3 in [h.id for h in await lsh.aquery(vectors[2], top_k=5, rerank=False)]
    assert await lsh.adelete([1]) == 1 and lsh.delete([2]) == 1
    assert lsh.count() == 3
    assert lsh.clear() > 0
    await lsh.aclose()
    lsh.close()


@pytest.mark.parametrize("user", ["", "default", "alice:wonderland", "bob:builder"])
async def test_credentials_in_the_url_reach_sync_and_async_clients(auth_redis, user):
    auth = {"": f":{QUOTED}", "default": f"default:{QUOTED}"}.get(user, user)
    lsh = LSHRS(redis_url=f"redis://{auth}@127.0.0.1:{auth_redis}/0", name="bobs", store=MemoryStore())
    await exercise(lsh)


@pytest.mark.parametrize(
    "auth",
    ["", ":wrong@", f"alice:{QUOTED}@", "alice:bad@", f"nobody:{QUOTED}@"],
)
def test_bad_credentials_raise_redis_own_error(auth_redis, auth):
    with pytest.raises(redis.exceptions.AuthenticationError) as raised:
        LSHRS(redis_url=f"redis://{auth}127.0.0.1:{auth_redis}/0", store=MemoryStore())
    assert type(raised.value).__module__.startswith("redis.")


async def test_a_wrong_async_password_raises_redis_own_error(auth_redis, name):
    good = redis.Redis(port=auth_redis, password=PASSWORD)
    bad = redis.asyncio.Redis(port=auth_redis, password="wrong")
    # hyperplanes: a two-row centroid index answers from its store without reading Redis
    lsh = LSHRS(redis=good, async_redis=bad, name=name, store=MemoryStore(), family="hyperplanes")
    lsh.ingest(vectors=unit_vectors(2), ids=[1, 2])
    with pytest.raises(redis.exceptions.AuthenticationError):
        await lsh.aquery(unit_vectors(1)[0], top_k=1)
    assert [h.id for h in lsh.query(unit_vectors(2)[1], top_k=1)] == [2]
    lsh.clear()
    await bad.aclose()
    good.close()


def test_an_acl_user_limited_to_one_index_cannot_reach_another(auth_redis):
    """bob's keys are ~lshrs:bobs:* (test above: every verb works); any other index is refused by Redis."""
    with pytest.raises(redis.exceptions.NoPermissionError):
        LSHRS(redis_url=f"redis://bob:builder@127.0.0.1:{auth_redis}/0", name="other", store=MemoryStore())


def test_stats_work_for_a_user_without_dangerous_commands(auth_redis):
    lsh = LSHRS(redis_url=f"redis://alice:wonderland@127.0.0.1:{auth_redis}/0", name="alices", store=MemoryStore())
    try:
        lsh.ingest(vectors=unit_vectors(3), ids=[1, 2, 3])
        assert lsh.stats()["count"] == 3
    finally:
        lsh.clear()


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory):
    """A TLS-only redis-server (self-signed certificate for localhost and 127.0.0.1) with a password."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("no openssl on PATH to make a test certificate")
    workdir = tmp_path_factory.mktemp("tls")
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    server = RedisProcess(
        workdir,
        "--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert),
        "--tls-auth-clients", "no", "--requirepass", PASSWORD,
        tls=True,
    )  # fmt: skip
    server.wait(redis.Redis(port=server.port, password=PASSWORD, ssl=True, ssl_cert_reqs="none"))
    stopped = server.exited()
    if stopped is not None:
        pytest.skip(f"redis-server refused --tls-port (built without TLS?): {stopped}")
    yield server.port, cert
    server.stop()


@pytest.mark.parametrize("verify", [False, True])
async def test_tls_urls_reach_sync_and_async_clients(tls_redis, name, verify):
    port, cert = tls_redis
    query = f"ssl_ca_certs={cert}" if verify else "ssl_cert_reqs=none"
    host = "localhost" if verify else "127.0.0.1"  # verification checks the certificate's name too
    lsh = LSHRS(redis_url=f"rediss://:{QUOTED}@{host}:{port}/0?{query}", name=name, store=MemoryStore())
    await exercise(lsh)


def test_tls_verification_is_not_skipped(tls_redis):
    port, _ = tls_redis
    with pytest.raises(redis.exceptions.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        LSHRS(redis_url=f"rediss://:{QUOTED}@localhost:{port}/0", store=MemoryStore())
    with pytest.raises(redis.exceptions.ConnectionError):  # plaintext to a TLS port
        LSHRS(redis_url=f"redis://:{QUOTED}@127.0.0.1:{port}/0", store=MemoryStore())


def test_a_client_that_decodes_replies_is_refused_before_any_write(redis_url, name):
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    with pytest.raises(ValueError, match="without decode_responses=True"):
        LSHRS(name=name, redis=client, store=MemoryStore(), dim=8)
    assert client.exists(f"lshrs:{name}:meta") == 0  # no half-made index
    client.close()


def test_metadata_keys_must_be_strings(make_index):
    lsh = make_index()
    with pytest.raises(TypeError, match="row 1 has the key 7 \\(int\\); metadata keys are strings"):
        lsh.ingest(vectors=np.ones((2, 8)), ids=[1, 2], metadata=[{"a": 1}, {7: "x"}])
    assert lsh.count() == 0 and lsh.store.count() == 0  # nothing written


def test_import_and_a_remote_redis_work_without_fcntl(redis_url, name):
    script = (
        "import sys; sys.modules['fcntl'] = None\n"  # as on a platform without it: importing it fails
        "import numpy as np, lshrs\n"
        f"lsh = lshrs.LSHRS(name={name!r}, redis_url={redis_url!r}, store=lshrs.MemoryStore())\n"
        "lsh.ingest(vectors=np.eye(4), ids=[1, 2, 3, 4]); print(lsh.query(np.eye(4)[0], top_k=1)[0].id)\n"
        "lsh.clear()\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "1", done.stderr


def test_import_and_the_sqlite_store_work_without_psycopg(redis_url, name, tmp_path):
    """The demo's install ('.[demo]') has no psycopg: only the Postgres store may need it."""
    script = (
        "import sys; sys.modules['psycopg'] = None\n"  # as when it is not installed: importing it fails
        "import numpy as np, lshrs\n"
        f"store = lshrs.SQLiteStore({str(tmp_path / 'docs.sqlite3')!r}, table={name!r})\n"
        f"lsh = lshrs.LSHRS(name={name!r}, redis_url={redis_url!r}, store=store)\n"
        "lsh.ingest(vectors=np.eye(4), ids=[1, 2, 3, 4], metadata=[{'k': i} for i in range(4)])\n"
        "print(lsh.find({'k': {'$gte': 2}}).tolist()); lsh.clear()\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "[3, 4]", done.stderr
