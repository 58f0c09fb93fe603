"""langchain-lshrs: LangChain's standard suites, and our own checks, on real Redis, SQLite, Postgres and MiniLM."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings
from langchain_tests.integration_tests import RetrieversIntegrationTests, VectorStoreIntegrationTests

from langchain_lshrs import LSHRSRetriever, LSHRSVectorStore, SentenceTransformerEmbeddings
from lshrs import LSHRS, PostgresStore, SQLiteStore, string_ids
from lshrs.cli import demo_dump
from lshrs.passages import split
from lshrs.wikipedia import read_articles

ROOT = Path(__file__).resolve().parents[1]


def open_store(embedding: Embeddings, redis_url: str, name: str, backend: str, where: Path | str) -> LSHRSVectorStore:
    if backend == "sqlite":
        store = SQLiteStore(Path(where) / "docs.sqlite3", table=name)
    else:
        store = PostgresStore(str(where), table=name)
    return LSHRSVectorStore(embedding, name=name, redis_url=redis_url, store=store)


def close_store(vs: LSHRSVectorStore) -> None:
    vs.lsh.clear()
    vs.lsh.close()
    vs.lsh.store.close()  # type: ignore[attr-defined]


# -- the standard suites -----------------------------------------------------------


class TestStandardSQLite(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self, redis_url: str, name: str, tmp_path: Path) -> Iterator[LSHRSVectorStore]:
        vs = open_store(self.get_embeddings(), redis_url, name, "sqlite", tmp_path)
        yield vs
        close_store(vs)


class TestStandardPostgres(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self, redis_url: str, name: str, postgres_dsn: str) -> Iterator[LSHRSVectorStore]:
        vs = open_store(self.get_embeddings(), redis_url, name, "postgres", postgres_dsn)
        yield vs
        close_store(vs)


class TestStandardRetriever(RetrieversIntegrationTests):
    """The retriever suite builds retrievers from properties, so a store with five documents is made first."""

    @pytest.fixture(autouse=True)
    def _store(self, request, redis_url: str, name: str, tmp_path: Path) -> Iterator[None]:
        vs = open_store(DeterministicFakeEmbedding(size=6), redis_url, name, "sqlite", tmp_path)
        vs.add_texts(["foo", "bar", "baz", "foo bar", "qux"])
        request.instance.vs = vs
        yield
        close_store(vs)

    @property
    def retriever_constructor(self) -> type[LSHRSRetriever]:
        return LSHRSRetriever

    @property
    def retriever_constructor_params(self) -> dict:
        return {"vectorstore": self.vs, "k": 2}

    @property
    def retriever_query_example(self) -> str:
        return "foo"


# -- semantics with the real model on real text -------------------------------------------

TOPICS = ["Anarchism", "Autism", "Albedo", "A", "Alabama", "Achilles", "Abraham Lincoln", "Aristotle"]


@pytest.fixture(scope="module")
def minilm() -> SentenceTransformerEmbeddings:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return SentenceTransformerEmbeddings()


@pytest.fixture(scope="module")
def passages() -> list[Document]:
    """The first passage of eight articles of the Wikipedia slice in gensim's wheel."""
    articles = {a.title: a for a in read_articles(demo_dump()) if a.title in TOPICS}
    return [
        Document(id=f"wiki-{articles[t].id}", page_content=split(articles[t])[0].text, metadata={"title": t})
        for t in TOPICS
    ]


@pytest.fixture
def wiki(minilm, passages, redis_url, name, tmp_path) -> Iterator[LSHRSVectorStore]:
    vs = open_store(minilm, redis_url, name, "sqlite", tmp_path)
    assert vs.add_documents(passages) == [d.id for d in passages]
    yield vs
    close_store(vs)


def titles(docs: list[Document]) -> list[str]:
    return [d.metadata["title"] for d in docs]


def test_a_question_finds_its_article(wiki):
    assert titles(wiki.similarity_search("What fraction of light does a surface reflect?", k=1)) == ["Albedo"]
    assert titles(wiki.similarity_search("Greek hero of the Trojan War", k=1)) == ["Achilles"]
    scored = wiki.similarity_search_with_relevance_scores("the sixteenth president of the United States", k=8)
    assert scored[0][0].metadata["title"] == "Abraham Lincoln" and len(scored) == 8
    raw = wiki.similarity_search_with_score("the sixteenth president of the United States", k=8)
    assert [s for _, s in scored] == pytest.approx([s for _, s in raw])  # relevance is the cosine, as in core
    assert wiki.similarity_search("anything", k=0) == [] and wiki.max_marginal_relevance_search("x", k=0) == []


def test_hybrid_search_finds_the_rare_words_a_question_names(wiki):
    assert titles(wiki.similarity_search("Myrmidons", k=1, alpha=0)) == ["Achilles"]  # keywords alone
    assert titles(wiki.similarity_search("Who was born in Stagira?", k=1, alpha=0)) == ["Aristotle"]
    assert titles(wiki.similarity_search("Which president was born in 1809?", k=1, alpha=0.5)) == ["Abraham Lincoln"]
    assert wiki.similarity_search("Myrmidons", k=0, alpha=0) == []
    plain = wiki.similarity_search_with_score("Greek hero", k=3)
    assert wiki.similarity_search_with_score("Greek hero", k=3, alpha=1) == plain
    hybrid = wiki.as_retriever(search_kwargs={"k": 1, "alpha": 0})
    assert titles(hybrid.invoke("Stagira")) == ["Aristotle"]
    retriever = LSHRSRetriever(vectorstore=wiki, k=1, alpha=0)
    assert titles(retriever.invoke("Myrmidons")) == ["Achilles"]
    assert titles(retriever.invoke("Myrmidons", filter={"title": "Albedo"})) == []
    assert titles(retriever.invoke("Greek hero of the Trojan War", alpha=1)) == ["Achilles"]
    with pytest.raises(ValueError, match="alpha"):
        wiki.similarity_search("x", k=1, alpha=2)


async def test_hybrid_search_async(wiki):
    assert titles(await wiki.asimilarity_search("Myrmidons", k=1, alpha=0)) == ["Achilles"]
    assert titles(await wiki.asimilarity_search("born in 1809", k=1, alpha=0.3)) == ["Abraham Lincoln"]
    assert titles(await LSHRSRetriever(vectorstore=wiki, k=1, alpha=0).ainvoke("Stagira")) == ["Aristotle"]


def test_retrievers_of_every_search_type(wiki):
    question = "a political philosophy against the state"
    assert titles(wiki.as_retriever(search_kwargs={"k": 2}).invoke(question))[0] == "Anarchism"
    threshold = wiki.as_retriever(search_type="similarity_score_threshold", search_kwargs={"score_threshold": 0.3})
    kept = threshold.invoke(question)
    assert titles(kept)[0] == "Anarchism" and len(kept) < 8
    cosines = [s for _, s in wiki.similarity_search_with_score(question, k=8)]
    assert len(kept) == sum(c >= 0.3 for c in cosines)  # the threshold is on the cosine, as in PGVector or Chroma
    mmr = wiki.as_retriever(search_type="mmr", search_kwargs={"k": 3, "fetch_k": 8}).invoke(question)
    assert titles(mmr)[0] == "Anarchism" and len(set(titles(mmr))) == 3
    retriever = LSHRSRetriever(vectorstore=wiki, k=3)
    assert len(retriever.invoke(question)) == 3 and len(retriever.invoke(question, k=1)) == 1
    assert titles(retriever.invoke(question, filter={"title": "Albedo"})) == ["Albedo"]
    by_callable = LSHRSRetriever(vectorstore=wiki, k=8, filter=lambda m: m["title"].startswith("Ar"))
    assert titles(by_callable.invoke(question)) and all(
        t.startswith("Ar") for t in titles(by_callable.invoke(question))
    )
    by_operator = wiki.similarity_search(question, k=8, filter={"title": {"$in": ["Albedo", "Autism"]}})
    assert sorted(titles(by_operator)) == ["Albedo", "Autism"]


def test_filters_and_mmr_diversity(wiki, minilm):
    assert titles(wiki.similarity_search("reflection of sunlight", k=3, filter={"title": "Aristotle"})) == ["Aristotle"]
    short_titles = wiki.similarity_search("reflection", k=8, filter=lambda m: len(m["title"]) <= 6)
    assert sorted(titles(short_titles)) == ["A", "Albedo", "Autism"]  # every match, fewer than k
    wiki.add_texts(["Albedo is the fraction of sunlight that a surface reflects."], [{"title": "Albedo"}], ids=["dup"])
    plain = wiki.similarity_search("albedo reflectivity of a surface", k=2)
    diverse = wiki.max_marginal_relevance_search("albedo reflectivity of a surface", k=2, fetch_k=8, lambda_mult=0.3)
    assert titles(plain) == ["Albedo", "Albedo"]
    assert titles(diverse)[0] == "Albedo" and titles(diverse)[1] != "Albedo"


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_ids_metadata_and_replacement(backend, redis_url, name, tmp_path, request):
    where = tmp_path if backend == "sqlite" else request.getfixturevalue("postgres_dsn")
    vs = open_store(DeterministicFakeEmbedding(size=6), redis_url, name, backend, where)
    try:
        ids = vs.add_texts(["foo", "bar", "baz"], [{"n": 1}, {"n": 2.5, "tags": ["x"]}, {}], ids=["a", None, "c"])
        assert ids[0] == "a" and ids[2] == "c" and len(ids[1]) == 36  # a uuid where None was given
        got = {d.id: d for d in vs.get_by_ids(["c", "missing", "a", ids[1]])}
        assert got["a"] == Document(id="a", page_content="foo", metadata={"n": 1})
        assert got[ids[1]].metadata == {"n": 2.5, "tags": ["x"]} and set(got) == {"a", "c", ids[1]}
        vs.add_texts(["foo again"], [{"n": 9}], ids=["a"])
        assert vs.get_by_ids(["a"]) == [Document(id="a", page_content="foo again", metadata={"n": 9})]
        assert vs.lsh.count() == 3 and vs.lsh.store.count() == 3
        assert vs.similarity_search("foo again", k=1)[0].id == "a"
        assert vs.delete(["a", "nope"]) is True
        assert vs.get_by_ids(["a"]) == [] and vs.lsh.count() == 2
        assert vs.add_texts([]) == []
    finally:
        close_store(vs)


def test_bad_input_writes_nothing(redis_url, name, tmp_path):
    vs = open_store(DeterministicFakeEmbedding(size=6), redis_url, name, "sqlite", tmp_path)
    try:
        with pytest.raises(ValueError, match="metadatas: expected 2 entries, got 1"):
            vs.add_texts(["a", "b"], [{"x": 1}])
        with pytest.raises(ValueError, match="ids: expected 2 entries, got 3"):
            vs.add_texts(["a", "b"], ids=["1", "2", "3"])
        with pytest.raises(ValueError, match="duplicate ids"):
            vs.add_texts(["a", "b"], ids=["1", "1"])
        with pytest.raises(TypeError, match="ids: expected str or None, got int"):
            vs.add_texts(["a"], ids=[1])  # type: ignore[list-item]
        with pytest.raises(ValueError, match="reserved"):
            vs.add_texts(["a"], [{string_ids.ID_FIELD: "x"}])
        with pytest.raises(ValueError, match="delete: give the ids"):
            vs.delete()
        zero = LSHRSVectorStore(_Zero(), lsh=vs.lsh)
        with pytest.raises(ValueError, match="zero"):
            zero.add_texts(["a", "b"])
        assert vs.lsh.store.count() == 0 and vs.lsh.count() == 0
        vs.delete(["never", "added"])  # unknown ids: nothing to do, no error
    finally:
        close_store(vs)


class _Zero(Embeddings):
    def embed_documents(self, texts):
        return [[0.0] * 6 for _ in texts]

    def embed_query(self, text):
        return [0.0] * 6


def test_a_key_held_by_another_id_is_refused(redis_url, name, tmp_path):
    vs = open_store(DeterministicFakeEmbedding(size=6), redis_url, name, "sqlite", tmp_path)
    try:
        # Simulate a 64-bit hash collision: a row under the key of "a" that belongs to "b".
        held = {string_ids.ID_FIELD: "b"}
        vs.lsh.ingest(vectors=np.ones((1, 6)), ids=[string_ids.key_for("a")], texts=["b's text"], metadata=[held])
        with pytest.raises(ValueError, match="maps to the key of stored id 'b'"):
            vs.add_texts(["a's text"], ids=["a"])
        assert vs.get_by_ids(["a"]) == [] and vs.lsh.get([string_ids.key_for("a")]).texts == ["b's text"]
        vs.delete(["a"])  # must not delete b's row
        assert vs.lsh.store.count() == 1
    finally:
        close_store(vs)


def test_an_index_with_4_byte_ids_is_refused(redis_url, name, tmp_path):
    lsh = LSHRS(name=name, redis_url=redis_url, store=SQLiteStore(tmp_path / "x.sqlite3"))
    with pytest.raises(ValueError, match="id_bytes=8"):
        LSHRSVectorStore(DeterministicFakeEmbedding(size=6), lsh=lsh)


async def test_from_texts_and_async(redis_url, name, tmp_path):
    vs = LSHRSVectorStore.from_texts(
        ["alpha", "beta"], DeterministicFakeEmbedding(size=6), ids=["1", "2"],
        name=name, redis_url=redis_url, store=SQLiteStore(tmp_path / "d.sqlite3", table=name),
    )  # fmt: skip
    try:
        assert await vs.aadd_texts(["gamma"], ids=["3"]) == ["3"]
        assert (await vs.asimilarity_search("gamma", k=1))[0].id == "3"
        assert {d.id for d in await vs.aget_by_ids(["1", "3"])} == {"1", "3"}
        await vs.adelete(["1"])
        found = await LSHRSRetriever(vectorstore=vs, k=5).ainvoke("alpha")
        assert sorted(d.id for d in found) == ["2", "3"] and vs.lsh.count() == 2
    finally:
        close_store(vs)


def test_the_rag_example_runs(redis_url, tmp_path):
    env = {**os.environ, "REDIS_URL": redis_url, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "langchain_rag.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "[Albedo]" in result.stdout and "Answer:" in result.stdout


# -- LangChain's indexing API (a record manager over this store) ---------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_the_indexing_api_adds_skips_updates_and_cleans_up(backend, redis_url, name, tmp_path, request):
    from langchain_core.indexing import InMemoryRecordManager, index

    where = tmp_path if backend == "sqlite" else request.getfixturevalue("postgres_dsn")
    vs = open_store(DeterministicFakeEmbedding(size=16), redis_url, name, backend, where)
    manager = InMemoryRecordManager(namespace=name)
    manager.create_schema()
    docs = [Document(page_content=f"passage {i} of {s}", metadata={"source": s}) for s in "ab" for i in range(3)]
    try:
        first = index(docs, manager, vs, cleanup="incremental", source_id_key="source", key_encoder="sha256")
        assert (first["num_added"], first["num_skipped"], first["num_deleted"]) == (6, 0, 0)
        assert vs.lsh.count() == 6
        again = index(docs, manager, vs, cleanup="incremental", source_id_key="source", key_encoder="sha256")
        assert (again["num_added"], again["num_skipped"], again["num_deleted"]) == (0, 6, 0)

        changed = [*docs[:2], Document(page_content="passage 2 of a, rewritten", metadata={"source": "a"})]
        update = index(changed, manager, vs, cleanup="incremental", source_id_key="source", key_encoder="sha256")
        assert (update["num_added"], update["num_skipped"], update["num_deleted"]) == (1, 2, 1)
        texts = {d.page_content for d in vs.similarity_search("passage", k=10)}
        assert "passage 2 of a, rewritten" in texts and "passage 2 of a" not in texts and len(texts) == 6

        full = index(
            docs[3:], manager, vs, cleanup="full", source_id_key="source", key_encoder="sha256"
        )  # source a is gone
        assert (full["num_added"], full["num_skipped"], full["num_deleted"]) == (0, 3, 3)
        assert vs.lsh.count() == 3
        assert {d.metadata["source"] for d in vs.similarity_search("passage", k=10)} == {"b"}
        assert vs.lsh.verify()["ok"]
    finally:
        close_store(vs)
