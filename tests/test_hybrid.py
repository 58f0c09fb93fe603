"""Hybrid search: the store's keyword search fused with the vector search, on every store and real servers."""

from __future__ import annotations

import asyncio
import sqlite3

import numpy as np
import psycopg
import pytest

from lshrs import LSHRS, MemoryStore, RedisStore, SQLiteStore
from lshrs.keywords import BM25, fuse, terms

TEXTS = [
    "the cat sat on the mat",
    "dogs bark at night",
    "Zanzibar spice trade in 1840",
    "quantum chromodynamics of quarks",
    "cat food and dog food",
    "a quiet night on the river",
]


def hashed(texts):
    """A deterministic embedding with no notion of words: vector search and keywords disagree."""
    out = np.empty((len(texts), 16), np.float32)
    for i, text in enumerate(texts):
        seed = int.from_bytes(text.encode()[:8].ljust(8, b"."), "little")
        out[i] = np.random.default_rng(seed).standard_normal(16)
    return out


@pytest.fixture(params=["memory", "sqlite", "redis", "postgres"])
def hybrid_store(request, tmp_path, name, redis_client):
    if request.param == "memory":
        return MemoryStore()
    if request.param == "sqlite":
        return SQLiteStore(tmp_path / "docs.sqlite3", table=name)
    if request.param == "redis":
        return RedisStore(redis_client, name=name)
    from lshrs import PostgresStore

    return PostgresStore(request.getfixturevalue("postgres_dsn"), table=name)


@pytest.fixture
def lsh(make_index, hybrid_store):
    index = make_index(store=hybrid_store, embedding_model=hashed)
    index.ingest(TEXTS, metadata=[{"n": i} for i in range(len(TEXTS))])
    return index


def ids(hits):
    return [hit.id for hit in hits]


def test_keywords_alone_find_the_rare_term(lsh):
    assert ids(lsh.query("zanzibar", alpha=0)) == [3]
    assert ids(lsh.query("what happened in 1840?", alpha=0)) == [3]
    assert set(ids(lsh.query("cat", alpha=0))) == {1, 5}
    assert lsh.query("xylograph lithography", alpha=0) == []


def test_alpha_one_is_the_vector_search_and_fusion_sits_between(lsh):
    plain = lsh.query("cat", top_k=3)
    assert [(h.id, h.score) for h in lsh.query("cat", top_k=3, alpha=1)] == [(h.id, h.score) for h in plain]
    fused = lsh.query("cat", top_k=6, alpha=0.5)
    vector_rank = {hit.id: r for r, hit in enumerate(lsh.query("cat", top_k=6))}
    keyword_ids = ids(lsh.query("cat", top_k=6, alpha=0))
    expected = fuse([h.id for h in lsh.query("cat", top_k=50)], keyword_ids, 0.5)[:6]
    assert [(h.id, pytest.approx(s)) for h, s in zip(fused, [s for _, s in expected])] == expected
    assert all(hit.text == TEXTS[hit.id - 1] and hit.metadata == {"n": hit.id - 1} for hit in fused)
    assert set(vector_rank) | set(keyword_ids) >= set(ids(fused))


def test_hybrid_without_payload_keeps_the_fused_order(lsh):
    full = lsh.query("cat food", top_k=4, alpha=0.5)
    bare = lsh.query("cat food", top_k=4, alpha=0.5, payload=False)
    assert [(h.id, h.score) for h in bare] == [(h.id, h.score) for h in full]
    assert all(h.text is None and h.metadata is None for h in bare) and full[0].text is not None


def test_keyword_index_follows_inserts_replacements_and_deletes(lsh):
    assert lsh.query("xylograph", alpha=0) == []
    [new] = lsh.ingest(["an old xylograph print"])
    assert ids(lsh.query("xylograph", alpha=0)) == [new]
    lsh.ingest(["now about gardening"], ids=[new])  # replaced: its old words no longer match
    assert lsh.query("xylograph", alpha=0) == []
    assert ids(lsh.query("gardening", alpha=0)) == [new]
    lsh.delete([new])
    assert lsh.query("gardening", alpha=0) == []


def test_a_vector_query_names_its_keywords(lsh):
    """A framework embeds the query itself and hands the vector, with the text for the keyword side."""
    vector = hashed(["zanzibar"])[0]
    assert ids(lsh.query(vector, alpha=0, keywords="zanzibar")) == [3]
    by_text = lsh.query("zanzibar", alpha=0.5, top_k=6)
    assert [(h.id, h.score) for h in lsh.query(vector, alpha=0.5, top_k=6, keywords="zanzibar")] == [
        (h.id, h.score) for h in by_text
    ]
    assert [ids(h) for h in lsh.query_many(hashed(["a", "b"]), alpha=0, keywords=["quarks", "mat"])] == [[4], [1]]


def test_filters_apply_to_keyword_hits(lsh):
    assert ids(lsh.query("cat", alpha=0, filter={"n": {"$gt": 0}})) == [5]
    assert ids(lsh.query("cat", alpha=0, filter=lambda m: m["n"] == 0)) == [1]
    assert all(hit.metadata["n"] > 0 for hit in lsh.query("cat night", alpha=0.5, filter={"n": {"$gt": 0}}))


@pytest.mark.parametrize("text", ['"cat', "cat OR -dog) AND (*:", "NEAR(cat dog)", "cat's \\ ' % _", "^cat*"])
def test_query_syntax_in_the_text_is_matched_as_words(lsh, text):
    assert 1 in ids(lsh.query(text, alpha=0))  # every variant holds the word "cat"; none is parsed as syntax


def test_punctuation_only_matches_nothing(lsh):
    assert lsh.query("?! ...", alpha=0) == []


def test_async_hybrid(lsh):
    hits = asyncio.run(lsh.aquery("zanzibar", alpha=0))
    assert ids(hits) == [3]
    assert [ids(h) for h in asyncio.run(lsh.aquery_many(["zanzibar", "quarks"], alpha=0))] == [[3], [4]]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"alpha": 1.5}, ValueError, r"alpha: expected a number in \[0, 1\]"),
        ({"alpha": float("nan")}, TypeError, "alpha"),
        ({"alpha": "0.5"}, TypeError, "alpha"),
        ({"alpha": True}, TypeError, "alpha"),
        ({"alpha": 0.5, "rerank": False}, ValueError, "needs rerank=True"),
        ({"alpha": 0.5, "top_p": 0.1}, ValueError, "top_p"),
    ],
)
def test_bad_hybrid_requests_are_refused(make_index, kwargs, error, match):
    lsh = make_index(embedding_model=hashed)
    lsh.ingest(TEXTS)
    with pytest.raises(error, match=match):
        lsh.query("cat", **kwargs)


def test_vector_queries_and_stores_without_keyword_search_are_refused(make_index):
    lsh = make_index(embedding_model=hashed)
    lsh.ingest(TEXTS)
    with pytest.raises(ValueError, match="needs text queries, or keywords="):
        lsh.query(hashed(["cat"])[0], alpha=0.5)
    with pytest.raises(ValueError, match="keywords: expected 2 text"):
        lsh.query_many(hashed(["cat", "dog"]), alpha=0.5, keywords=["cat"])
    with pytest.raises(ValueError, match="keywords: expected 1 text"):
        lsh.query_many(hashed(["cat"]), alpha=0.5, keywords="cat")

    class Plain(MemoryStore):
        keyword_search = None

    bare = make_index(name=lsh.name + "b", store=Plain(), embedding_model=hashed)
    bare.ingest(TEXTS)
    with pytest.raises(TypeError, match="has no keyword_search"):
        bare.query("cat", alpha=0.5)


def test_sqlite_keyword_index_sees_other_writers_and_rows_from_before_it(tmp_path, make_index):
    path = tmp_path / "docs.sqlite3"
    lsh = make_index(store=SQLiteStore(path), embedding_model=hashed)
    lsh.ingest(TEXTS)  # written before the keyword index exists: its first search fills it
    assert ids(lsh.query("zanzibar", alpha=0)) == [3]
    other = sqlite3.connect(path)
    with other:
        other.execute("INSERT INTO documents (id, vector, text) VALUES (99, ?, 'a xylograph')", (b"\0" * 64,))
        other.execute("UPDATE documents SET text = 'renamed' WHERE id = 3")
    other.close()
    assert ids(lsh.query("xylograph", alpha=0)) == [99]
    assert lsh.query("zanzibar", alpha=0) == []


def test_postgres_keyword_index_is_made_once_and_sees_other_writers(postgres_dsn, name, make_index):
    from lshrs import PostgresStore

    lsh = make_index(store=PostgresStore(postgres_dsn, table=name), embedding_model=hashed)
    lsh.ingest(TEXTS)
    assert ids(lsh.query("zanzibar", alpha=0)) == [3]
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        found = conn.execute("SELECT indexdef FROM pg_indexes WHERE tablename = %s", (name,)).fetchall()
        assert any("gin" in row[0].lower() and "to_tsvector" in row[0] for row in found)
        conn.execute(f"UPDATE {name} SET text = 'renamed' WHERE id = 3")
    assert lsh.query("zanzibar", alpha=0) == []
    second = PostgresStore(postgres_dsn, table=name)  # a second store on the same table: the index exists
    assert ids(LSHRS(name=lsh.name, redis=lsh.redis, store=second).query("renamed", alpha=0)) == [3]


def test_redis_store_keyword_index_rebuilds_after_another_process_writes(redis_client, name, make_index):
    lsh = make_index(store=RedisStore(redis_client, name=name), embedding_model=hashed)
    lsh.ingest(TEXTS)
    assert ids(lsh.query("zanzibar", alpha=0)) == [3]
    elsewhere = RedisStore(redis_client, name=name)  # another process's store object, same keys
    elsewhere.put(np.array([99]), hashed(["x"]), ["a xylograph"])
    assert ids(lsh.query("xylograph", alpha=0)) == [99]


def test_bm25_ranks_rarer_and_more_frequent_terms_higher():
    index = BM25([(1, "apple apple banana"), (2, "apple banana"), (3, "banana cherry"), (4, None)])
    found, scores = index.search("apple", 10)
    assert found.tolist() == [1, 2] and scores[0] > scores[1] > 0
    found, _ = index.search("cherry banana", 10)
    assert found[0] == 3  # the only document with the rare term comes first
    assert index.search("nothing", 10)[0].tolist() == []
    assert terms("Hello, World! 1840") == ["hello", "world", "1840"]


def test_fuse_weights_the_two_rankings():
    assert [d for d, _ in fuse([1, 2, 3], [3, 4], 1.0)] == [1, 2, 3]
    assert [d for d, _ in fuse([1, 2, 3], [3, 4], 0.0)] == [3, 4]
    both = dict(fuse([1, 2, 3], [3, 4], 0.5))
    assert max(both, key=both.get) == 3  # in both lists
    assert both[3] == pytest.approx(0.5 / 63 + 0.5 / 61)
