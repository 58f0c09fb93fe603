"""Reattaching to an index with its name and a DSN (or file) alone: the index keeps its store's mapping."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest
from conftest import clustered
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_lshrs import LSHRSVectorStore as LangChainStore
from lshrs import LSHRS, MemoryStore, PostgresStore
from lshrs.reopen import default_table

MISSION = {
    "table": "articles",
    "id_column": "index",
    "vector_column": "vector",
    "text_column": "raw_document",
    "metadata_column": None,
}


def drop(dsn: str, table: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {table}")


@pytest.fixture
def articles(postgres_dsn, name):
    """The mission's own setup: an existing table `index | vector | raw_document` (real[]), with another column."""
    schema = f"s_{name}"
    vectors = clustered(300, dim=12, seed=8)
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(
            f"CREATE TABLE {schema}.articles (index bigint PRIMARY KEY, vector real[], raw_document text, url text)"
        )
        with conn.cursor().copy(f"COPY {schema}.articles (index, vector, raw_document, url) FROM STDIN") as copy:
            for i, v in enumerate(vectors):
                copy.write_row((i, v.tolist(), f"article {i}", f"https://example.org/{i}"))
    yield schema, vectors
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def test_a_later_process_needs_only_the_name_and_the_dsn(redis_url, postgres_dsn, name, articles):
    schema, vectors = articles
    first = LSHRS(name=name, redis_url=redis_url, postgres_dsn=postgres_dsn, mapping={**MISSION, "schema": schema})
    try:
        assert first.index() == 300
        first.close()
        later = LSHRS(name=name, redis_url=redis_url, postgres_dsn=postgres_dsn)
        hit = later.query(vectors[42], top_k=1)[0]
        assert (hit.id, hit.text) == (42, "article 42")
        assert later.count() == 300 and later.verify()["ok"]
        later.ingest(vectors=vectors[:1] * 2, ids=[1_000], texts=["a new article"])
        with psycopg.connect(postgres_dsn) as conn:
            row = conn.execute(f"SELECT raw_document, url FROM {schema}.articles WHERE index = 1000").fetchone()
        assert row == ("a new article", None)  # written into the user's table, its own column untouched
        later.close()
    finally:
        LSHRS(name=name, redis_url=redis_url, store=MemoryStore()).clear()


def test_the_default_store_is_refused_for_an_index_kept_in_postgres(redis_url, postgres_dsn, name, tmp_path):
    made = LSHRS(name=name, redis_url=redis_url, store=PostgresStore(postgres_dsn, table=name))
    try:
        made.ingest(vectors=clustered(10, dim=8), ids=range(10))
        with pytest.raises(ValueError, match="keeps its documents in postgres.*postgres_dsn="):
            LSHRS(name=name, redis_url=redis_url, data_dir=tmp_path)  # would have opened an empty SQLite table
        assert not (tmp_path / "lshrs.sqlite3").exists()
        again = LSHRS(name=name, redis_url=redis_url, postgres_dsn=postgres_dsn)
        assert again.count() == 10 and again.store.count() == 10
    finally:
        made.clear()
        drop(postgres_dsn, name)


def test_an_index_on_the_default_file_reopens_its_own_table(redis_url, name, tmp_path):
    first = LSHRS(name=name, redis_url=redis_url, data_dir=tmp_path, mapping={"table": "kept_here"})
    try:
        first.ingest(vectors=clustered(20, dim=8), ids=range(20), texts=[f"t{i}" for i in range(20)])
        first.close()
        later = LSHRS(name=name, redis_url=redis_url, data_dir=tmp_path)
        assert later.store.describe()["table"] == "kept_here"
        assert later.store.get(np.array([3])).texts == ["t3"]
        later.close()
        fresh = LSHRS(name=name.upper(), redis_url=redis_url, data_dir=tmp_path)
        assert fresh.store.describe()["table"] == default_table(name.upper())  # a new index: the default table
        fresh.close()
    finally:
        LSHRS(name=name, redis_url=redis_url, store=MemoryStore()).clear()


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"store": MemoryStore(), "postgres_dsn": "postgresql://x"}, TypeError),
        ({"store": MemoryStore(), "mapping": {"table": "t"}}, TypeError),
        ({"postgres_dsn": "postgresql://x", "sqlite": "f.db"}, ValueError),
        ({"mapping": {"tabel": "t"}}, ValueError),
        ({"mapping": ["table"]}, TypeError),
    ],
)
def test_contradictory_store_arguments_are_refused(redis_url, name, tmp_path, kwargs, error):
    with pytest.raises(error):
        LSHRS(name=name, redis_url=redis_url, data_dir=tmp_path, **kwargs)
    assert not (tmp_path / "lshrs.sqlite3").exists()


def test_langchain_reattaches_by_name_and_dsn(redis_url, postgres_dsn, name):
    embedding = DeterministicFakeEmbedding(size=8)
    made = LangChainStore(embedding, name=name, redis_url=redis_url, store=PostgresStore(postgres_dsn, table=name))
    try:
        made.add_texts(["red apples", "green pears"], [{"kind": "fruit"}] * 2, ids=["a", "b"])
        later = LangChainStore(embedding, name=name, redis_url=redis_url, postgres_dsn=postgres_dsn)
        found = later.similarity_search("red apples", k=1)
        assert [(d.id, d.page_content) for d in found] == [("a", "red apples")]
        assert [d.id for d in later.get_by_ids(["b"])] == ["b"]
    finally:
        made.lsh.clear()
        drop(postgres_dsn, name)


def test_llamaindex_reattaches_by_name_and_dsn(redis_url, postgres_dsn, name):
    from llama_index.core.schema import TextNode
    from llama_index.core.vector_stores.types import VectorStoreQuery

    from llama_index.vector_stores.lshrs import LSHRSVectorStore as LlamaStore

    made = LlamaStore(name=name, redis_url=redis_url, store=PostgresStore(postgres_dsn, table=name))
    try:
        vectors = clustered(2, dim=8, seed=9)
        made.add([TextNode(id_=i, text=t, embedding=v.tolist()) for i, t, v in zip("ab", ["one", "two"], vectors)])
        later = LlamaStore(name=name, redis_url=redis_url, postgres_dsn=postgres_dsn)
        result = later.query(VectorStoreQuery(query_embedding=vectors[1].tolist(), similarity_top_k=1))
        assert result.ids == ["b"] and result.nodes[0].get_content() == "two"
    finally:
        made.client.clear()
        drop(postgres_dsn, name)
