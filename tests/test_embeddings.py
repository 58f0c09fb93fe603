"""Texts in and out with the real all-MiniLM-L6-v2 model (offline package)."""

import numpy as np
import pytest

from lshrs.embeddings import SentenceTransformerEmbedder, resolve_model_path

DOCS = [
    "The Eiffel Tower is a wrought-iron lattice tower in Paris, France.",
    "Photosynthesis converts light energy into chemical energy in plants.",
    "The Python programming language emphasises code readability.",
    "Mount Everest is Earth's highest mountain above sea level.",
    "A violin is a wooden string instrument played with a bow.",
]


def test_offline_model_is_used():
    assert resolve_model_path("sentence-transformers/all-MiniLM-L6-v2").endswith("model")
    vectors = SentenceTransformerEmbedder()(["hello world", "bonjour"])
    assert vectors.shape == (2, 384) and vectors.dtype == np.float32


def test_ingest_and_query_texts(make_index):
    lsh = make_index()
    ids = lsh.ingest(DOCS, metadata=[{"n": i} for i in range(len(DOCS))])
    assert lsh.dim == 384
    hits = lsh.query("Which plant process turns sunlight into energy?", top_k=2)
    assert hits[0].id == ids[1] and hits[0].text == DOCS[1] and hits[0].metadata == {"n": 1}
    many = lsh.query_many(["tallest peak in the Himalaya", "famous landmark in France"], top_k=1)
    assert [row[0].text for row in many] == [DOCS[3], DOCS[0]]


def test_the_model_is_kept_with_the_index(make_index, redis_client, name):
    lsh = make_index()
    lsh.ingest(DOCS[:3])
    assert redis_client.hget(f"lshrs:{name}:meta", "model") == b"sentence-transformers/all-MiniLM-L6-v2"
    again = make_index(store=lsh.store, embedding_model="all-MiniLM-L6-v2")  # the same model, another spelling
    assert again.query("Eiffel Tower", top_k=1)[0].text == DOCS[0]

    other = make_index(store=lsh.store, embedding_model="sentence-transformers/paraphrase-MiniLM-L3-v2")
    with pytest.raises(ValueError, match="holds vectors of the model 'sentence-transformers/all-MiniLM-L6-v2'"):
        other.query("Eiffel Tower")  # refused before any model loads (this one is not even installed)
    with pytest.raises(ValueError, match="holds vectors of the model"):
        other.ingest(["another text"])
    assert lsh.count() == 3  # nothing written

    other.ingest(vectors=np.ones((1, 384), np.float32), ids=[99])  # vectors need no model
    assert make_index(store=lsh.store).query(DOCS[4], top_k=1)  # no model named: the saved one embeds
    assert lsh.stats()["model"] == "sentence-transformers/all-MiniLM-L6-v2"


def test_an_index_built_from_vectors_saves_no_model(make_index, redis_client, name):
    lsh = make_index(embedding_model=lambda texts: np.ones((len(texts), 8), np.float32))
    lsh.ingest(vectors=np.eye(8, dtype=np.float32))
    lsh.ingest(["a text"])  # a callable has no name to keep
    assert redis_client.hget(f"lshrs:{name}:meta", "model") is None
    assert len(lsh.query("a text", top_k=3)) == 3
