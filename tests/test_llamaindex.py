"""The LlamaIndex vector store on real Redis with real SQLite and Postgres stores, and the real model end to end."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from llama_index.core import Document, MockEmbedding, StorageContext, VectorStoreIndex
from llama_index.core.llms import MockLLM
from llama_index.core.schema import IndexNode, NodeRelationship, QueryBundle, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)
from llama_index.core.vector_stores.utils import build_metadata_filter_fn

from llama_index.vector_stores.lshrs import LSHRSVectorStore, SentenceTransformerEmbedding
from lshrs import LSHRS, MemoryStore, PostgresStore, SQLiteStore
from lshrs.cli import demo_dump
from lshrs.passages import split
from lshrs.string_ids import key_for
from lshrs.wikipedia import read_articles

EXAMPLE = Path(__file__).parent.parent / "examples" / "llamaindex_query_engine.py"
DIM = 8

# Six nodes of three source documents; node i's embedding points mostly along axis i.
CORPUS = [
    ("doc-a", {"genre": "fiction", "year": 1990, "rating": 4.5}),
    ("doc-a", {"genre": "fiction", "year": 2005, "rating": 3.0}),
    ("doc-b", {"genre": "science", "year": 2010}),
    ("doc-b", {"genre": "science", "year": 2020, "rating": 5.0}),
    ("doc-c", {"genre": "history", "year": 1850, "rating": 2.5}),
    ("doc-c", {"genre": "history", "year": "unknown", "rating": 4.0}),
]
EVERYTHING = np.ones(DIM)  # a query every node is similar to


def axis(i: int) -> list[float]:
    vec = np.full(DIM, 0.05)
    vec[i % DIM] = 1.0
    return vec.tolist()


def make_node(i: int, *, ref: str = "doc-a", metadata: dict | None = None, text: str | None = None) -> TextNode:
    return TextNode(
        id_=f"node-{i}",
        text=text if text is not None else f"text of node {i}",
        metadata=metadata or {},
        embedding=axis(i),
        relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=ref)},
    )


def corpus_nodes() -> list[TextNode]:
    return [make_node(i, ref=ref, metadata=meta) for i, (ref, meta) in enumerate(CORPUS)]


def ask(vector, k: int = 10, **fields) -> VectorStoreQuery:
    return VectorStoreQuery(query_embedding=list(map(float, vector)), similarity_top_k=k, **fields)


def ids_of(nodes) -> set[int]:
    return {int(node.node_id.removeprefix("node-")) for node in nodes}


def where(key: str, value, op: FilterOperator = FilterOperator.EQ) -> MetadataFilter:
    return MetadataFilter(key=key, value=value, operator=op)


@pytest.fixture
def open_store(redis_url, tmp_path, name, request):
    """Make LSHRSVectorStores on the shared Redis; their Redis keys go and their clients close after the test."""
    opened: list[LSHRSVectorStore] = []

    def open_(kind: str = "sqlite", **kwargs) -> LSHRSVectorStore:
        if kind == "postgres":
            kwargs.setdefault("store", PostgresStore(request.getfixturevalue("postgres_dsn"), table=name))
        kwargs.setdefault("name", name)
        kwargs.setdefault("redis_url", redis_url)
        store = LSHRSVectorStore(data_dir=tmp_path, **kwargs)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.client.clear()
        store.client.close()


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, open_store) -> LSHRSVectorStore:
    """A store holding CORPUS, on each backend."""
    vector_store = open_store(request.param)
    vector_store.add(corpus_nodes())
    return vector_store


# -- writes and reads --------------------------------------------------------------------


def test_add_returns_ids_and_query_ranks_by_cosine(store):
    result = store.query(ask(axis(3), k=3))
    assert result.ids[0] == "node-3" and len(result.ids) == 3
    assert [n.node_id for n in result.nodes] == result.ids
    assert result.nodes[0].get_content() == "text of node 3"
    expected = [np.dot(axis(3), axis(i)) / np.dot(axis(i), axis(i)) for i in ids_of(result.nodes)]
    assert sorted(result.similarities, reverse=True) == pytest.approx(sorted(expected, reverse=True), abs=1e-5)
    assert result.similarities == sorted(result.similarities, reverse=True)


def test_text_metadata_and_relationships_round_trip(store):
    node = TextNode(
        id_="a string id with spaces/and é",
        text="The body of the node.",
        metadata={"title": "T", "tags": ["x", "y"], "info": {"depth": 2}},
        embedding=axis(1),
        start_char_idx=3,
        end_char_idx=24,
        excluded_embed_metadata_keys=["info"],
        relationships={
            NodeRelationship.SOURCE: RelatedNodeInfo(node_id="the-source"),
            NodeRelationship.PREVIOUS: RelatedNodeInfo(node_id="node-0"),
        },
    )
    assert store.add([node]) == [node.node_id]
    [back] = store.get_nodes(node_ids=[node.node_id])
    assert isinstance(back, TextNode)
    assert (back.node_id, back.text, back.metadata) == (node.node_id, node.text, node.metadata)
    assert back.ref_doc_id == "the-source"
    assert back.relationships[NodeRelationship.PREVIOUS].node_id == "node-0"
    assert (back.start_char_idx, back.end_char_idx) == (3, 24)
    assert back.excluded_embed_metadata_keys == ["info"]
    row = store.client.get([key_for(node.node_id)])
    assert row.texts == ["The body of the node."]  # the row text is the node text, without metadata


def test_re_adding_a_node_replaces_it(store):
    store.add([make_node(0, text="new text", metadata={"genre": "poetry"})])
    replaced = store.add([TextNode(id_="node-0", text="moved", embedding=axis(6))])
    assert replaced == ["node-0"]
    assert store.client.count() == len(CORPUS)
    [node] = store.get_nodes(node_ids=["node-0"])
    assert (node.text, node.metadata) == ("moved", {})
    assert store.query(ask(axis(6), k=1)).ids == ["node-0"]


def test_get_nodes(store):
    assert ids_of(store.get_nodes()) == set(range(len(CORPUS)))
    assert [n.node_id for n in store.get_nodes(node_ids=["node-4", "missing", "node-1", "node-4"])] == [
        "node-4",
        "node-1",
    ]
    assert store.get_nodes(node_ids=[]) == []
    science = MetadataFilters(filters=[where("genre", "science")])
    assert ids_of(store.get_nodes(filters=science)) == {2, 3}
    assert ids_of(store.get_nodes(node_ids=["node-0", "node-3"], filters=science)) == {3}


def test_delete_by_source_document(store):
    store.delete("doc-b")
    assert ids_of(store.get_nodes()) == {0, 1, 4, 5}
    assert store.client.count() == 4
    assert ids_of(store.query(ask(axis(2), k=10)).nodes) == {0, 1, 4, 5}
    store.delete("no-such-doc")
    assert store.client.count() == 4


def test_delete_nodes(store):
    store.delete_nodes(node_ids=["node-0", "unknown"])
    assert ids_of(store.get_nodes()) == {1, 2, 3, 4, 5}
    store.delete_nodes(filters=MetadataFilters(filters=[where("rating", 4.0, FilterOperator.GTE)]))
    assert ids_of(store.get_nodes()) == {1, 2, 4}
    store.delete_nodes(node_ids=["node-2", "node-4"], filters=MetadataFilters(filters=[where("genre", "history")]))
    assert ids_of(store.get_nodes()) == {1, 2}
    store.delete_nodes(node_ids=[])  # an empty list selects nothing
    with pytest.raises(ValueError, match="clear"):
        store.delete_nodes()
    assert ids_of(store.get_nodes()) == {1, 2}
    assert store.client.count() == 2


def test_clear_then_refill(store):
    store.client.ingest(vectors=np.ones((1, DIM)), ids=[77], texts=["a row another writer put in the same index"])
    store.clear()
    assert store.client.get([77]).texts == ["a row another writer put in the same index"]  # not a node: kept
    store.client.delete([77])
    assert store.get_nodes() == []
    assert store.client.count() == 0
    assert store.query(ask(EVERYTHING)).ids == []
    store.add([make_node(5)])
    assert store.query(ask(EVERYTHING)).ids == ["node-5"]


# -- filters and restrictions ----------------------------------------------------------------

OPERATOR_CASES = [
    (FilterOperator.EQ, "genre", "fiction", {0, 1}),
    (FilterOperator.EQ, "year", 2005, {1}),
    (FilterOperator.NE, "genre", "fiction", {2, 3, 4, 5}),
    (FilterOperator.NE, "rating", 4.5, {1, 2, 3, 4, 5}),  # a missing key passes !=
    (FilterOperator.GT, "year", 2005, {2, 3}),  # the string year fails, not raises
    (FilterOperator.GTE, "year", 2005, {1, 2, 3}),
    (FilterOperator.LT, "rating", 3.0, {4}),
    (FilterOperator.LTE, "rating", 3.0, {1, 4}),
    (FilterOperator.GT, "genre", "g", {2, 3, 4, 5}),  # strings compare with strings
    (FilterOperator.IN, "genre", ["science", "history"], {2, 3, 4, 5}),
    (FilterOperator.NIN, "genre", ["science"], {0, 1, 4, 5}),
    (FilterOperator.NIN, "rating", [4.5, 3.0], {2, 3, 4, 5}),  # a missing key passes nin
    (FilterOperator.IN, "rating", [4.0], {5}),
]


@pytest.mark.parametrize(
    "op, key, value, expected", OPERATOR_CASES, ids=[f"{key}-{op.name}-{value}" for op, key, value, _ in OPERATOR_CASES]
)
def test_filter_operators(store, op, key, value, expected):
    filters = MetadataFilters(filters=[where(key, value, op)])
    assert ids_of(store.query(ask(EVERYTHING, filters=filters)).nodes) == expected
    assert ids_of(store.get_nodes(filters=filters)) == expected


@pytest.mark.parametrize(
    "filters, expected",
    [
        (MetadataFilters(filters=[where("genre", "science"), where("year", 2015, FilterOperator.GT)]), {3}),
        (MetadataFilters(filters=[where("genre", "science"), where("year", 2010)]), {2}),
        (MetadataFilters(filters=[where("genre", "fiction"), where("genre", "science")]), set()),
        (
            MetadataFilters(
                filters=[where("genre", "history"), where("rating", 5.0, FilterOperator.GTE)],
                condition=FilterCondition.OR,
            ),
            {3, 4, 5},
        ),
        (
            MetadataFilters(
                filters=[
                    MetadataFilters(
                        filters=[where("genre", "fiction"), where("genre", "history")], condition=FilterCondition.OR
                    ),
                    where("rating", 3.0, FilterOperator.GT),
                ]
            ),
            {0, 5},
        ),
        (MetadataFilters(filters=[where("genre", "fiction")], condition=FilterCondition.NOT), {2, 3, 4, 5}),
        (MetadataFilters(filters=[]), {0, 1, 2, 3, 4, 5}),
    ],
    ids=["and", "and-equalities", "and-contradiction", "or", "nested", "not", "empty"],
)
def test_filter_conditions(store, filters, expected):
    assert ids_of(store.query(ask(EVERYTHING, filters=filters)).nodes) == expected
    assert ids_of(store.get_nodes(filters=filters)) == expected


def test_node_ids_restrict_the_query_exactly(store):
    result = store.query(ask(axis(0), k=5, node_ids=["node-4", "node-3", "unknown", "node-0"]))
    assert result.ids == ["node-0", "node-3", "node-4"] or result.ids == ["node-0", "node-4", "node-3"]
    assert result.similarities[0] == pytest.approx(1.0, abs=1e-6)
    assert store.query(ask(axis(3), k=1, node_ids=["node-4", "node-3"])).ids == ["node-3"]
    history = MetadataFilters(filters=[where("genre", "history")])
    assert store.query(ask(axis(0), node_ids=["node-0", "node-4"], filters=history)).ids == ["node-4"]
    assert store.query(ask(axis(0), node_ids=["unknown"])).ids == []


def test_empty_node_ids_mean_no_restriction(store):
    # VectorStoreIndex's retriever sends node_ids=[] to a store that keeps its own text
    assert store.query(ask(axis(2), k=1, node_ids=[])).ids == ["node-2"]
    assert len(store.query(ask(EVERYTHING, k=10, node_ids=[], doc_ids=[])).ids) == len(CORPUS)


def test_doc_ids_restrict_to_source_documents(store):
    assert ids_of(store.query(ask(EVERYTHING, doc_ids=["doc-b"])).nodes) == {2, 3}
    assert ids_of(store.query(ask(EVERYTHING, doc_ids=["doc-a", "doc-c"])).nodes) == {0, 1, 4, 5}
    rated = MetadataFilters(filters=[where("rating", 3.0, FilterOperator.GT)])
    assert ids_of(store.query(ask(EVERYTHING, doc_ids=["doc-c"], filters=rated)).nodes) == {5}
    fiction = MetadataFilters(filters=[where("genre", "fiction")])
    assert ids_of(store.query(ask(EVERYTHING, doc_ids=["doc-b"], filters=fiction)).nodes) == set()
    assert ids_of(store.query(ask(axis(0), k=1, node_ids=["node-0", "node-3"], doc_ids=["doc-b"])).nodes) == {3}


def test_top_k_on_a_tiny_store(open_store):
    store = open_store()
    store.add([make_node(i) for i in range(3)])
    for k in (1, 2, 3, 10):
        result = store.query(ask(axis(1), k=k))
        assert len(result.ids) == len(result.nodes) == len(result.similarities) == min(k, 3)
        assert result.ids[0] == "node-1"


def test_query_options_pass_through(store):
    assert store.query(ask(axis(1), k=1), top_p=0.5, num_probes=2).ids == ["node-1"]
    with pytest.raises(TypeError, match="mmr_threshold"):
        store.query(ask(axis(1)), mmr_threshold=0.5)


# -- bad input ---------------------------------------------------------------------------------


def test_node_without_embedding_writes_nothing(open_store):
    store = open_store()
    bare = TextNode(id_="bare", text="no vector")
    with pytest.raises(ValueError, match="bare"):
        store.add([make_node(0), bare])
    with pytest.raises(ValueError, match="one size"):
        store.add([make_node(0), TextNode(id_="short", text="x", embedding=[1.0, 2.0])])
    with pytest.raises(ValueError, match="duplicate"):
        store.add([make_node(0), make_node(0)])
    with pytest.raises(ValueError, match="reserved"):
        store.add([make_node(0, metadata={"_lshrs_id": "mine"})])
    assert store.get_nodes() == []
    assert store.client.count() == 0 and store.client.dim is None


def test_a_key_held_by_another_id_is_refused(open_store):
    store = open_store()
    # what a 64-bit hash collision would leave: node-0's key holding a different string id
    store.client.ingest(["other"], [axis(0)], ids=[key_for("node-0")], metadata=[{"_lshrs_id": "someone-else"}])
    with pytest.raises(ValueError, match="someone-else"):
        store.add([make_node(1), make_node(0)])
    assert [n.node_id for n in store.get_nodes()] == ["someone-else"]


def test_empty_add_writes_nothing(open_store):
    store = open_store()
    assert store.add([]) == []
    assert store.client.dim is None and store.get_nodes() == []


def test_flat_metadata_refuses_nested_values(open_store):
    store = open_store(flat_metadata=True)
    with pytest.raises(ValueError, match="tags"):
        store.add([make_node(0, metadata={"tags": ["a"]})])
    assert store.get_nodes() == []
    store.add([make_node(1, metadata={"year": 2000, "title": "ok"})])
    assert store.get_nodes()[0].metadata == {"year": 2000, "title": "ok"}


TAGGED = [
    {"tags": ["sci-fi", "space"], "title": "Dune Messiah", "note": ""},
    {"tags": ["space"], "title": "The Right Stuff", "note": None},
    {"tags": [], "title": "dune"},
    {"tags": ["history", "war"], "title": "SPQR", "note": "Rome"},
    {"title": "Untitled"},
]
EVERY_OPERATOR = [
    where("tags", "space", FilterOperator.CONTAINS),
    where("tags", ["space", "war"], FilterOperator.ANY),
    where("tags", ["sci-fi", "space"], FilterOperator.ALL),
    where("title", "Dune", FilterOperator.TEXT_MATCH),
    where("title", "dune", FilterOperator.TEXT_MATCH_INSENSITIVE),
    where("note", None, FilterOperator.IS_EMPTY),
    where("tags", None, FilterOperator.IS_EMPTY),
    where("title", "SPQR", FilterOperator.NE),
    where("title", ["SPQR", "dune"], FilterOperator.IN),
]


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
@pytest.mark.parametrize("item", EVERY_OPERATOR, ids=[f"{f.key}-{f.operator.name}" for f in EVERY_OPERATOR])
def test_every_filter_operator_agrees_with_llama_index_core(open_store, kind, item):
    store = open_store(kind)
    store.add([make_node(i, metadata=meta) for i, meta in enumerate(TAGGED)])
    for condition in (FilterCondition.AND, FilterCondition.OR, FilterCondition.NOT):
        filters = MetadataFilters(filters=[item, where("title", "Untitled", FilterOperator.NE)], condition=condition)
        core = build_metadata_filter_fn(lambda node_id: TAGGED[int(node_id.split("-")[1])], filters)
        expected = {i for i in range(len(TAGGED)) if core(f"node-{i}")}
        assert ids_of(store.query(ask(EVERYTHING, filters=filters)).nodes) == expected, condition
        assert ids_of(store.get_nodes(filters=filters)) == expected, condition


def test_bad_filters_and_modes_are_refused(store):
    with pytest.raises(ValueError, match="list value"):
        store.query(ask(EVERYTHING, filters=MetadataFilters(filters=[where("genre", "fiction", FilterOperator.IN)])))
    with pytest.raises(ValueError, match="list value"):
        store.get_nodes(filters=MetadataFilters(filters=[where("genre", "fiction", FilterOperator.ANY)]))
    with pytest.raises(TypeError, match="JSON scalar"):
        store.delete_nodes(filters=MetadataFilters(filters=[where("genre", ["a"], FilterOperator.CONTAINS)]))
    with pytest.raises(ValueError, match="mmr"):
        store.query(ask(EVERYTHING, mode=VectorStoreQueryMode.MMR))
    with pytest.raises(ValueError, match="query_embedding"):
        store.query(VectorStoreQuery(query_str="no vector"))
    assert len(store.get_nodes()) == len(CORPUS)
    assert store.query(ask(EVERYTHING, k=0)).nodes == []  # k = 0 asks for nothing, as core's stores answer


def test_index_nodes_do_not_hide_text_nodes_from_the_retriever(open_store):
    store = open_store()
    index = VectorStoreIndex(
        [make_node(i) for i in range(4)], storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=MockEmbedding(embed_dim=DIM),
    )  # fmt: skip
    summary = IndexNode(text="a summary", index_id="elsewhere", id_="summary", embedding=list(EVERYTHING))
    index.insert_nodes([summary])
    assert list(index.index_struct.nodes_dict) == ["summary"]  # what core tracks for a store that keeps text
    found = index.as_retriever(similarity_top_k=10).retrieve(QueryBundle("q", embedding=list(EVERYTHING)))
    assert {n.node.node_id for n in found} == {"node-0", "node-1", "node-2", "node-3", "summary"}
    restricted = store.query(ask(EVERYTHING, node_ids=["node-1", "summary"]))
    assert set(restricted.ids) == {"node-1", "summary"}  # naming a text node: a strict limit


# -- construction ------------------------------------------------------------------------------


def test_wraps_an_lshrs_with_eight_byte_ids(redis_client, name, tmp_path):
    lsh = LSHRS(name=name, redis=redis_client, store=SQLiteStore(tmp_path / "docs.sqlite3", table=name), id_bytes=8)
    try:
        store = LSHRSVectorStore(lsh=lsh)
        assert store.client is lsh and LSHRSVectorStore.class_name() == "LSHRSVectorStore"
        assert store.stores_text and not store.flat_metadata
        store.add([make_node(0)])
        assert LSHRSVectorStore(lsh=lsh).get_nodes()[0].node_id == "node-0"
    finally:
        lsh.clear()


def test_refuses_an_lshrs_with_four_byte_ids(make_index, name):
    with pytest.raises(ValueError, match="id_bytes=8"):
        LSHRSVectorStore(lsh=make_index(id_bytes=4, dim=DIM))
    with pytest.raises(ValueError, match="id_bytes=8"):
        LSHRSVectorStore(lsh=make_index(name=name + "b"))  # will be created with the default, 4
    with pytest.raises(TypeError, match="not both"):
        LSHRSVectorStore(lsh=make_index(name=name + "c", id_bytes=8), name="other")


def test_reads_rows_lshrs_wrote_itself(make_index):
    lsh = make_index(id_bytes=8)
    lsh.ingest(["plain row one", "plain row two"], [axis(0), axis(1)], ids=[11, 12], metadata=[{"title": "One"}, None])
    result = LSHRSVectorStore(lsh=lsh).query(ask(axis(1), k=2))
    assert result.ids == ["12", "11"]
    assert [n.get_content() for n in result.nodes] == ["plain row two", "plain row one"]
    assert [n.metadata for n in result.nodes] == [{}, {"title": "One"}]


# -- async -------------------------------------------------------------------------------------


async def test_async_variants(open_store):
    store = open_store()
    assert await store.async_add(corpus_nodes()) == [f"node-{i}" for i in range(len(CORPUS))]
    assert (await store.aquery(ask(axis(4), k=1))).ids == ["node-4"]
    assert ids_of(await store.aget_nodes(node_ids=["node-1", "node-2"])) == {1, 2}
    await store.adelete("doc-a")
    await store.adelete_nodes(filters=MetadataFilters(filters=[where("genre", "history")]))
    assert ids_of(await store.aget_nodes()) == {2, 3}
    await store.aclear()
    assert await store.aget_nodes() == []


# -- the real model on real text -------------------------------------------------------------------


@pytest.fixture(scope="module")
def embed_model():
    """all-MiniLM-L6-v2 from the offline package, loaded once for the module."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        model = SentenceTransformerEmbedding()
        model.get_text_embedding("load the model while offline")
        yield model


@pytest.fixture(scope="module")
def wiki_documents() -> list[Document]:
    """The first passage of each of the first 8 articles of the Wikipedia slice in gensim's wheel."""
    return [
        Document(
            text=split(article)[0].text,
            doc_id=f"wikipedia-{article.id}",
            metadata={"title": article.title},
        )
        for article in itertools.islice(read_articles(demo_dump()), 8)
    ]


def test_sentence_transformer_embedding(embed_model):
    texts = ["Albedo is the fraction of sunlight reflected.", "Lincoln was president.", "Achilles fought at Troy."]
    batch = np.array(embed_model.get_text_embedding_batch(texts))
    assert batch.shape == (3, 384)
    assert np.linalg.norm(batch, axis=1) == pytest.approx(1.0, abs=1e-4)
    query = np.array(embed_model.get_query_embedding("How reflective is a surface?"))
    assert int(np.argmax(batch @ query)) == 0
    assert np.array(embed_model.get_text_embedding(texts[1])) == pytest.approx(batch[1], abs=1e-5)


async def test_sentence_transformer_embedding_async(embed_model):
    vectors = await embed_model.aget_text_embedding_batch(["one", "two"])
    query = await embed_model.aget_query_embedding("one")
    assert len(vectors) == 2 and np.dot(vectors[0], query) == pytest.approx(1.0, abs=1e-4)


ALBEDO_QUESTION = "What fraction of the sunlight falling on a surface does it reflect?"


def test_vector_store_index_end_to_end(open_store, embed_model, wiki_documents):
    titles = [doc.metadata["title"] for doc in wiki_documents]
    assert titles == ["Anarchism", "Autism", "Albedo", "A", "Alabama", "Achilles", "Abraham Lincoln", "Aristotle"]
    storage = StorageContext.from_defaults(vector_store=open_store())
    index = VectorStoreIndex.from_documents(wiki_documents, storage_context=storage, embed_model=embed_model)

    hits = index.as_retriever(similarity_top_k=3).retrieve(ALBEDO_QUESTION)
    assert [h.node.metadata["title"] for h in hits][0] == "Albedo" and len(hits) == 3
    assert hits[0].node.get_content().startswith("Albedo") and hits[0].score > hits[1].score
    response = index.as_query_engine(llm=MockLLM(), similarity_top_k=2).query(ALBEDO_QUESTION)
    assert response.source_nodes[0].node.metadata["title"] == "Albedo"
    assert "reflect" in str(response)  # MockLLM echoes the prompt, so the retrieved passage reached it

    reopened = open_store()
    again = VectorStoreIndex.from_vector_store(reopened, embed_model=embed_model)
    assert reopened.client.count() == len(wiki_documents)  # reopening wrote nothing
    lincoln = again.as_retriever(similarity_top_k=1).retrieve("Who was the sixteenth president of the United States?")
    assert lincoln[0].node.metadata["title"] == "Abraham Lincoln"
    only = MetadataFilters(filters=[where("title", "Aristotle")])
    filtered = again.as_retriever(filters=only, similarity_top_k=3).retrieve(ALBEDO_QUESTION)
    assert [h.node.metadata["title"] for h in filtered] == ["Aristotle"]

    albedo = next(doc for doc in wiki_documents if doc.metadata["title"] == "Albedo")
    again.delete_ref_doc(albedo.doc_id)
    assert reopened.client.count() == len(wiki_documents) - 1
    after = again.as_retriever(similarity_top_k=3).retrieve(ALBEDO_QUESTION)
    assert "Albedo" not in [h.node.metadata["title"] for h in after]


EXAMPLE_QUESTION = "How much of the sunlight that falls on a surface is reflected?"


def test_example_query_engine_runs(redis_url, redis_client, tmp_path):
    env = {**os.environ, "REDIS_URL": redis_url, "HF_HUB_OFFLINE": "1"}
    try:
        result = subprocess.run(
            [sys.executable, str(EXAMPLE)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
    finally:
        LSHRS(name="llamaindex-example", redis=redis_client, store=MemoryStore()).clear()
    assert result.returncode == 0, result.stderr
    assert "built index 'llamaindex-example' from 8 passages" in result.stdout
    lines = result.stdout.splitlines()
    first_source = lines[lines.index(f"? {EXAMPLE_QUESTION}") + 1]
    assert "Albedo:" in first_source
    assert not (tmp_path / "lshrs_data" / "redis").exists()  # REDIS_URL was used, no embedded server


# -- keyword and hybrid modes ---------------------------------------------------------------------

WORDS = ["apple orchard", "banana split", "cherry blossom", "date palm", "elderberry wine", "fig tree"]


def test_text_search_and_hybrid_modes_use_the_stored_text(store):
    store.add(
        [make_node(i, ref=r, metadata=m, text=WORDS[i]) for i, (r, m) in enumerate(CORPUS)],
    )
    text_search = VectorStoreQueryMode.TEXT_SEARCH
    found = store.query(VectorStoreQuery(query_str="cherry", mode=text_search, similarity_top_k=3))
    assert ids_of(found.nodes) == {2} and found.nodes[0].get_content() == "cherry blossom"
    hybrid = store.query(ask(axis(0), k=2, query_str="fig", mode=VectorStoreQueryMode.HYBRID, alpha=0.5))
    assert ids_of(hybrid.nodes) == {0, 5}  # node 0 by its vector, node 5 by its word
    assert ids_of(store.query(ask(axis(0), k=1, query_str="fig", mode=VectorStoreQueryMode.HYBRID, alpha=1)).nodes) == {
        0
    }
    within = VectorStoreQuery(query_str="cherry fig", mode=text_search, similarity_top_k=3, node_ids=["node-5"])
    assert ids_of(store.query(within).nodes) == {5}
    science = MetadataFilters(filters=[where("genre", "science")])
    filtered = VectorStoreQuery(query_str="cherry fig", mode=text_search, similarity_top_k=3, filters=science)
    assert ids_of(store.query(filtered).nodes) == {2}
    with pytest.raises(ValueError, match="needs query_str"):
        store.query(ask(axis(0), mode=VectorStoreQueryMode.HYBRID))


async def test_keyword_modes_async(store):
    store.add([make_node(i, ref=r, metadata=m, text=WORDS[i]) for i, (r, m) in enumerate(CORPUS)])
    query = VectorStoreQuery(query_str="date", mode=VectorStoreQueryMode.TEXT_SEARCH, similarity_top_k=3)
    assert ids_of((await store.aquery(query)).nodes) == {3}


def test_hybrid_retrievers_of_a_vector_store_index(open_store, embed_model, wiki_documents):
    """Through llama-index-core's own retriever: rare words the question names find their article."""
    storage = StorageContext.from_defaults(vector_store=open_store())
    index = VectorStoreIndex.from_documents(wiki_documents, storage_context=storage, embed_model=embed_model)
    text = index.as_retriever(vector_store_query_mode="text_search", similarity_top_k=1)
    assert text.retrieve("Myrmidons")[0].node.metadata["title"] == "Achilles"
    assert text.retrieve("Who was born in Stagira?")[0].node.metadata["title"] == "Aristotle"
    hybrid = index.as_retriever(vector_store_query_mode="hybrid", alpha=0.5, similarity_top_k=2)
    titles = [hit.node.metadata["title"] for hit in hybrid.retrieve("Which president was born in 1809?")]
    assert titles[0] == "Abraham Lincoln"


# -- llama-index-core's IngestionPipeline over this store ---------------------------------------------


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_ingestion_pipeline_upserts_documents_without_duplicates(open_store, kind):
    from llama_index.core.ingestion import DocstoreStrategy, IngestionPipeline
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.core.storage.docstore import SimpleDocumentStore

    store = open_store(kind)
    embed = MockEmbedding(embed_dim=DIM)

    def pipeline() -> IngestionPipeline:
        return IngestionPipeline(
            transformations=[SentenceSplitter(chunk_size=64, chunk_overlap=0), embed],
            vector_store=store,
            docstore=docstore,
            docstore_strategy=DocstoreStrategy.UPSERTS,
        )

    docstore = SimpleDocumentStore()
    docs = [Document(text=f"Document {d}. " + " ".join(f"word{d}{i}" for i in range(40)), doc_id=f"doc-{d}")
            for d in range(3)]  # fmt: skip
    first = pipeline().run(documents=docs)
    assert len(first) > 3 and store.client.count() == len(first)  # every node in the store once
    assert pipeline().run(documents=docs) == []  # unchanged documents are skipped
    assert store.client.count() == len(first)

    changed = Document(text="Document 1, now short.", doc_id="doc-1")
    redone = pipeline().run(documents=[docs[0], changed, docs[2]])
    assert len(redone) == 1  # only the changed document is embedded again
    kept = store.get_nodes()
    assert {n.ref_doc_id for n in kept} == {"doc-0", "doc-1", "doc-2"}
    assert [n.get_content() for n in kept if n.ref_doc_id == "doc-1"] == ["Document 1, now short."]
    assert store.client.count() == len(kept)

    index = VectorStoreIndex.from_vector_store(store, embed_model=embed)
    assert len(index.as_retriever(similarity_top_k=50).retrieve("Document")) == len(kept)
    assert store.client.verify()["ok"]
