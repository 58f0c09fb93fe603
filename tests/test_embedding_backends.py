"""The embedding backends with the real all-MiniLM-L6-v2: OpenVINO against PyTorch, devices, the conversion cache."""

import subprocess
import sys
import threading

import numpy as np
import pytest

from lshrs import openvino_encoder
from lshrs.embeddings import DEFAULT_MODEL, SentenceTransformerEmbedder, parse_devices, resolve_model_path

# Not importorskip: importing openvino here first would bypass lshrs's own import (telemetry off).
pytestmark = pytest.mark.skipif(not openvino_encoder.available(), reason="openvino is not installed")

TEXTS = [
    "The Eiffel Tower is a wrought-iron lattice tower in Paris, France.",
    "Photosynthesis converts light energy into chemical energy in plants.",
    "Python",
    "Mount Everest is Earth's highest mountain above sea level; climbers reach it from Nepal and Tibet. " * 8,
    "A violin is a wooden string instrument played with a bow.",
    "",
    "Die Berliner Mauer fiel am 9. November 1989.",
]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A cache of converted models of this test's own, so each test converts (or not) for itself."""
    monkeypatch.setenv("LSHRS_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "openvino"


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return SentenceTransformerEmbedder(DEFAULT_MODEL, device="cpu", backend="torch")(TEXTS)


def test_openvino_gives_the_torch_vectors_in_the_callers_order(cache, reference):
    embed = SentenceTransformerEmbedder(DEFAULT_MODEL, device="cpu", batch_size=3)  # auto, batches of mixed lengths
    vectors = embed(TEXTS)
    assert embed.backend_used == "openvino"
    assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
    cosines = np.sum(vectors * reference, axis=1)
    assert cosines.min() > 0.999, cosines  # bf16 on CPUs that have it: close, not equal
    # each text's vector is nearest its own torch vector: the length sort was undone
    assert (np.argmax(vectors @ reference.T, axis=1) == np.arange(len(TEXTS))).all()
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)  # the model's Normalize kept
    assert embed([]).shape[0] == 0


def test_the_conversion_is_cached_and_reused(cache, monkeypatch):
    SentenceTransformerEmbedder(DEFAULT_MODEL, device="cpu")(["warm"])
    assert [p.name for p in cache.iterdir() if (p / "model.xml").exists()] and len(list(cache.iterdir())) == 1

    def refuse(*args):
        raise AssertionError("converted again")

    monkeypatch.setattr(openvino_encoder, "_convert", refuse)
    again = SentenceTransformerEmbedder(DEFAULT_MODEL, device="cpu")
    assert again(["warm"]).shape == (1, 384) and again.backend_used == "openvino"


def test_two_conversions_at_once_both_end_with_one_whole_model(cache):
    model = SentenceTransformerEmbedder(DEFAULT_MODEL, device="cpu", backend="torch").model
    path = resolve_model_path(DEFAULT_MODEL)
    transformer = list(model)[0]
    got: list = []
    errors: list = []

    def convert() -> None:
        try:
            got.append(openvino_encoder._converted(transformer.auto_model, transformer.tokenizer, path))
        except Exception as exc:  # noqa: BLE001 - the test reports any failure
            errors.append(exc)

    threads = [threading.Thread(target=convert) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(got) == 2 and got[0] == got[1] and got[0].exists()
    assert len(list(cache.iterdir())) == 1  # no scratch copy left behind


def test_a_model_that_does_not_convert_falls_back_to_torch_or_is_refused(cache, tmp_path, reference):
    from sentence_transformers import SentenceTransformer, models

    base = SentenceTransformer(resolve_model_path(DEFAULT_MODEL), device="cpu")
    transformer = list(base)[0]
    odd = SentenceTransformer(modules=[transformer, models.Pooling(384, pooling_mode="max")], device="cpu")
    odd.save(str(tmp_path / "max-pooled"))

    auto = SentenceTransformerEmbedder(str(tmp_path / "max-pooled"), device="cpu")
    assert auto(["a text"]).shape == (1, 384) and auto.backend_used == "torch"
    forced = SentenceTransformerEmbedder(str(tmp_path / "max-pooled"), device="cpu", backend="openvino")
    with pytest.raises(ValueError, match="does not convert.*pooling 'max'"):
        forced(["a text"])
    assert not cache.exists() or not list(cache.iterdir())  # nothing converted


def test_bad_backend_and_device_are_refused_before_loading():
    with pytest.raises(ValueError, match="embedding backend: expected one of auto, torch, openvino"):
        SentenceTransformerEmbedder(DEFAULT_MODEL, backend="onnx")
    with pytest.raises(ValueError, match="embedding device"):
        SentenceTransformerEmbedder(DEFAULT_MODEL, device=" , ")
    assert parse_devices("cuda:0, cuda:1") == ["cuda:0", "cuda:1"]
    assert parse_devices(["cpu"]) == ["cpu"] and parse_devices(None) is None


def test_several_devices_embed_through_a_process_pool(reference):
    embed = SentenceTransformerEmbedder(DEFAULT_MODEL, device="cpu,cpu", batch_size=2)
    try:
        vectors = embed(TEXTS)
        assert embed.backend_used == "torch-pool"
        assert np.allclose(vectors, reference, atol=1e-5)
    finally:
        embed.close()
    assert embed._pool is None


def test_an_index_embeds_with_the_backend_it_was_given(cache, make_index, redis_client, name):
    lsh = make_index(embedding_backend="openvino", embedding_device="cpu")
    ids = lsh.ingest(TEXTS[:5])
    assert lsh._text_model._embedder.backend_used == "openvino"
    hits = lsh.query("Which plant process turns sunlight into energy?", top_k=1)
    assert hits[0].id == ids[1]
    # the model name is kept as with PyTorch: an index built by one backend is queried by the other
    assert redis_client.hget(f"lshrs:{name}:meta", "model") == DEFAULT_MODEL.encode()
    torch_side = make_index(store=lsh.store, embedding_backend="torch")
    assert torch_side.query(TEXTS[4], top_k=1)[0].id == ids[4]
    with pytest.raises(ValueError, match="embedding backend"):
        make_index(embedding_backend="tensorrt")


def test_openvino_is_loaded_with_its_converters_telemetry_off():
    """OpenVINO's converter sends usage data by default without a consent file; lshrs's conversion must not."""
    code = (
        "from lshrs import openvino_encoder as e; e._import_openvino(); "
        "from openvino.tools.ovc import convert_impl, telemetry_utils; "
        "print(convert_impl.tm.__name__, telemetry_utils.tm.__name__); "
        "import openvino_telemetry; print('importable')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["openvino.tools.ovc.telemetry_stub", "openvino.tools.ovc.telemetry_stub", "importable"]
