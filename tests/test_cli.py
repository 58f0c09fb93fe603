"""The `lshrs` command driven as a subprocess, as a user or a script runs it."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import redis
from servers import RedisServer, free_port

from lshrs import LSHRS, MemoryStore, SQLiteStore, embedded
from lshrs.cli import demo_dump
from lshrs.passages import split
from lshrs.wikipedia import read_articles

SLICE = demo_dump()


def lshrs(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lshrs", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**_clean_env(), **(env or {})},
    )


def _ctrl_c_default() -> None:
    """In the child before exec: SIGINT back to its default action, so Python turns it into KeyboardInterrupt.

    A suite started in the background by a non-interactive shell (``pytest &``, as
    a CI script may be) inherits SIGINT ignored, every child inherits that, and
    Python leaves an ignored SIGINT ignored: the interrupted job would run on and
    exit 0.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LSHRS_") and k != "REDIS_URL"}
    env["HF_HUB_OFFLINE"] = "1"
    return env


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and text in lines[0], result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture
def target(redis_url: str, name: str, tmp_path: Path) -> dict[str, str]:
    """An index on the shared Redis with documents in a fresh SQLite file, given by environment variables."""
    return {"LSHRS_REDIS_URL": redis_url, "LSHRS_NAME": name, "LSHRS_SQLITE": str(tmp_path / "docs.sqlite3")}


def test_help_lists_the_commands():
    result = lshrs("--help")
    assert result.returncode == 0
    for command in ("demo", "ingest", "query", "stats", "delete", "clear", "index", "verify"):
        assert f"  {command} " in result.stdout
    assert "130  interrupted" in result.stdout  # the exit codes are documented for scripts
    sub = lshrs("ingest", "wikipedia", "--help")
    assert sub.returncode == 0 and "--redis-url" in sub.stdout and "LSHRS_POSTGRES_DSN" in sub.stdout


def test_usage_errors_exit_2():
    assert lshrs("frobnicate").returncode == 2
    assert lshrs("query", "x", "--top-k", "0").returncode == 2


def test_bad_inputs_give_one_line_and_exit_1(target, tmp_path):
    assert_one_line_error(lshrs("ingest", "wikipedia", str(tmp_path / "nope.xml.bz2"), env=target), 1, "no such file")
    junk = tmp_path / "junk.xml"
    junk.write_bytes(b"\x00\x01 definitely not a dump")
    assert_one_line_error(lshrs("ingest", "wikipedia", str(junk), env=target), 1, "expected a MediaWiki XML dump")
    assert_one_line_error(lshrs("query", "anything", env=target), 1, "is empty or does not exist")
    assert_one_line_error(lshrs("stats", "--name", "no/slashes", env=target), 1, "name: expected")


def test_unreachable_servers_exit_3(target):
    dead_redis = {**target, "LSHRS_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    assert_one_line_error(lshrs("stats", env=dead_redis), 3, "lshrs: error:")
    dead_pg = {**target, "LSHRS_POSTGRES_DSN": f"postgresql://x@127.0.0.1:{free_port()}/x?connect_timeout=3"}
    del dead_pg["LSHRS_SQLITE"]
    assert_one_line_error(lshrs("stats", env=dead_pg), 3, "lshrs: error:")


def test_ingest_query_stats_delete_clear(target, redis_url, name):
    articles = list(read_articles(SLICE))[:3]  # Anarchism, Autism, Albedo
    expected = [p for a in articles for p in split(a)]
    first = lshrs("ingest", "wikipedia", str(SLICE), "--limit", "3", "--no-progress", env=target)
    assert first.returncode == 0, first.stderr
    assert f"3 articles, {len(expected)} passages" in first.stdout and "run again to continue" in first.stdout

    found = lshrs("query", "the fraction of sunlight that a surface reflects", "-k", "3", "--json", env=target)
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)
    assert [h["metadata"]["title"] for h in hits] == ["Albedo"] * 3
    assert hits[0]["score"] >= hits[1]["score"] >= hits[2]["score"]
    plain = lshrs("query", "autism spectrum diagnosis in children", "-k", "1", env=target)
    assert plain.returncode == 0 and "Autism: " in plain.stdout
    keyword = lshrs("query", "whiteness", "--alpha", "0", "-k", "1", "--json", env=target)  # keywords alone
    assert keyword.returncode == 0, keyword.stderr
    assert json.loads(keyword.stdout)[0]["metadata"]["title"] == "Albedo"
    assert lshrs("query", "x", "--alpha", "2", env=target).returncode == 2

    stats = json.loads(lshrs("stats", env=target).stdout)
    assert stats["count"] == stats["store_count"] == len(expected) and stats["id_bytes"] == 8

    gone = [str(expected[0].id), "999999999"]
    deleted = lshrs("delete", *gone, env=target)
    assert deleted.returncode == 0 and "deleted 1 of 2" in deleted.stdout
    assert json.loads(lshrs("stats", env=target).stdout)["count"] == len(expected) - 1

    healthy = lshrs("verify", env=target)
    assert healthy.returncode == 0 and json.loads(healthy.stdout)["ok"] is True

    cleared = lshrs("clear", "--yes", env=target)
    assert cleared.returncode == 0 and "removed" in cleared.stdout
    assert not list(redis.Redis.from_url(redis_url).scan_iter(match=f"lshrs:{name}:*"))


def test_interrupted_ingest_resumes_without_gaps_or_duplicates(target, redis_url, name):
    expected = sorted(p.id for a in list(read_articles(SLICE))[:6] for p in split(a))
    args = ["ingest", "wikipedia", str(SLICE), "--limit", "6", "--batch", "32", "--no-progress"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "lshrs", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**_clean_env(), **target},
        preexec_fn=_ctrl_c_default,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None and stored_rows(target["LSHRS_SQLITE"], name) == 0:
        time.sleep(0.1)  # interrupt right after the first batch is written
    assert proc.poll() is None, "the job ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "run the same command again to resume" in err, err

    resumed = lshrs(*args, env=target)
    assert resumed.returncode == 0, resumed.stderr
    assert f"6 articles, {len(expected)} passages" in resumed.stdout
    stats = json.loads(lshrs("stats", env=target).stdout)
    assert stats["count"] == stats["store_count"] == len(expected)
    with sqlite3.connect(target["LSHRS_SQLITE"]) as conn:
        stored = [row[0] for row in conn.execute(f'SELECT id FROM "{name}" ORDER BY id')]
    assert stored == expected


def stored_rows(path: str, table: str) -> int:
    """Rows the ingest subprocess has written so far (0 while the file or table is missing or locked)."""
    conn = sqlite3.connect(path, timeout=0.05)
    try:
        return int(conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])
    except sqlite3.Error:
        return 0
    finally:
        conn.close()


def test_demo_on_the_embedded_default(tmp_path):
    data = tmp_path / "data"
    args = ["demo", "--data-dir", str(data), "--limit", "3", "--top-k", "2", "-q", "how much light does snow reflect?"]
    try:
        result = lshrs(*args)
        assert result.returncode == 0, result.stderr
        assert "index 'wikipedia-demo':" in result.stdout and "of 3 articles" in result.stdout
        assert "? how much light does snow reflect?" in result.stdout
        hits = [line for line in result.stdout.splitlines() if line.startswith("  ")]
        assert len(hits) == 2 and all("Albedo: " in line for line in hits)
        assert (data / "lshrs.sqlite3").is_file() and (data / "redis").is_dir()
        again = lshrs(*args)  # reuses the index: nothing re-embedded, same answer
        assert again.returncode == 0 and again.stdout == result.stdout
    finally:
        embedded.stop(data)


def test_query_without_a_name_answers_from_the_only_index(tmp_path):
    server = RedisServer()
    try:
        env = {"LSHRS_REDIS_URL": server.url, "LSHRS_SQLITE": str(tmp_path / "docs.sqlite3")}
        empty = lshrs("query", "anything", env=env)
        assert_one_line_error(empty, 1, "no index on this Redis")
        lsh = LSHRS(name="wikipedia-demo", redis_url=server.url, store=SQLiteStore(env["LSHRS_SQLITE"],
                    table="wikipedia-demo"))  # fmt: skip
        lsh.ingest(["The Eiffel Tower is in Paris.", "Photosynthesis feeds plants.", "Violins have four strings."])
        lsh.close()
        found = lshrs("query", "a famous landmark in France", "-k", "1", env=env)
        assert found.returncode == 0, found.stderr
        assert "Eiffel" in found.stdout and "answering from 'wikipedia-demo'" in found.stderr
        both = lshrs("query", "a famous landmark in France", "how plants make food", "-k", "1", "--json", env=env)
        answers = json.loads(both.stdout)  # two questions, one model load: one list of hits each
        assert [a[0]["text"].split()[1] for a in answers] == ["Eiffel", "feeds"]
        named = lshrs("query", "anything", "--name", "missing", env=env)  # a name given is never swapped
        assert_one_line_error(named, 1, "index 'missing' is empty or does not exist")
        LSHRS(name="second", redis_url=server.url, store=MemoryStore()).ingest(vectors=np.ones((2, 384)))
        several = lshrs("query", "anything", env=env)
        assert several.returncode == 2 and "second, wikipedia-demo: pass --name" in several.stderr
    finally:
        server.stop()


def test_the_missions_postgres_table_is_indexed_and_queried_from_the_command_line(postgres_dsn, redis_url, name):
    """An existing table `index | vector | raw_document` (real[]): named once at the first index, kept after."""
    import psycopg

    from lshrs.embeddings import SentenceTransformerEmbedder

    docs = ["The Eiffel Tower is in Paris.", "Photosynthesis feeds plants.", "Violins have four strings."]
    vectors = SentenceTransformerEmbedder()(docs)
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE TABLE "{name}_docs" (index bigint PRIMARY KEY, vector real[], raw_document text)')
        for i, (doc, vec) in enumerate(zip(docs, vectors)):
            conn.execute(f'INSERT INTO "{name}_docs" VALUES (%s, %s, %s)', (i, vec.tolist(), doc))
    env = {"LSHRS_REDIS_URL": redis_url, "LSHRS_POSTGRES_DSN": postgres_dsn, "LSHRS_NAME": name}
    mapping = ["--table", f"{name}_docs", "--id-column", "index", "--vector-column", "vector",
               "--text-column", "raw_document"]  # fmt: skip
    built = lshrs("index", *mapping, env=env)
    assert built.returncode == 0, built.stderr
    found = lshrs("query", "a violin", "-k", "1", "--json", env=env)  # no table or column named this time
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)[0]["text"] == docs[2]
    stats = json.loads(lshrs("stats", env=env).stdout)
    assert stats["count"] == 3
    assert lshrs("clear", "--yes", env=env).returncode == 0
