"""Texts in and out with the real all-MiniLM-L6-v2 model (offline package)."""

import numpy as np

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
