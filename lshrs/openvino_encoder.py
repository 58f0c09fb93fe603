"""Sentence embeddings on the CPU through OpenVINO, converted from the sentence-transformers model itself.

Why: embedding is the slowest stage of indexing a corpus on the CPU, and
OpenVINO runs MiniLM several times faster than PyTorch there (bf16 on CPUs
with AMX or avx512_bf16, f32 elsewhere) while the index's neighbours barely
move; benchmarks/embedding.py measures both side by side.

sentence-transformers' own OpenVINO backend needs optimum-intel, whose
releases pin transformers below the versions this project installs, so the
conversion happens here, from the PyTorch module already loaded: a model
that is a transformer, then mean or CLS pooling, then an optional
normalisation (MiniLM and most sentence-transformers checkpoints). Anything
else raises `Unsupported`, and the caller keeps PyTorch.

OpenVINO's model converter sends usage telemetry by default when no
consent file exists; a library converting behind its caller's back must
not, so `_import_openvino` loads openvino with that converter bound to its
own no-op stub (unless the process imported openvino before lshrs did).

The converted model is cached on disk, keyed by the model's files and the
OpenVINO and transformers versions, so only the first process pays for the
conversion; it is written to a temporary directory and renamed, so two
processes converting at once both end with a whole copy.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import sys
import tempfile
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

log = logging.getLogger("lshrs")

POOLINGS = ("mean", "cls")


class Unsupported(Exception):
    """The model is not a shape this module converts (the message says what differs)."""


def _import_openvino() -> Any:
    """The openvino module; when this process had not imported it yet, with the converter's telemetry off.

    `import openvino` imports its converter, which imports openvino_telemetry
    or, when that import fails, a stub that sends nothing. A None entry in
    sys.modules makes the import fail for the duration of the first import;
    the real package stays importable afterwards for anyone who wants it.
    """
    if "openvino" not in sys.modules and "openvino_telemetry" not in sys.modules:
        sys.modules["openvino_telemetry"] = None  # type: ignore[assignment]
        try:
            import openvino
        finally:
            del sys.modules["openvino_telemetry"]
    import openvino

    return openvino


def available() -> bool:
    """Whether the openvino package is installed (without importing it)."""
    return importlib.util.find_spec("openvino") is not None


def cache_root() -> Path:
    """Where converted models live: $LSHRS_CACHE_DIR, else the user's cache directory."""
    base = os.environ.get("LSHRS_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "lshrs"
    )
    return Path(base) / "openvino"


class OpenVINOEncoder:
    """Texts -> (n, d) float32, with the tokenizer and pooling of `st_model` and its transformer run by OpenVINO."""

    def __init__(
        self, st_model: Any, model_path: str, *, batch_size: int = 64, inference_precision: str | None = None
    ) -> None:
        """`inference_precision` ("f32", "bf16") overrides the CPU plugin's own choice (bf16 where it is fast)."""
        transformer, self.pooling, self.normalize = _layout(st_model)
        self.tokenizer = transformer.tokenizer
        self.max_length = int(transformer.max_seq_length)
        self.batch_size = batch_size
        xml = _converted(transformer.auto_model, self.tokenizer, model_path)
        ov = _import_openvino()

        # One request at a time, each using every core: indexing embeds one batch after another.
        config = {"PERFORMANCE_HINT": "LATENCY"}
        if inference_precision is not None:
            config["INFERENCE_PRECISION_HINT"] = inference_precision
        compiled = ov.Core().compile_model(str(xml), "CPU", config)
        self.precision = compiled.get_property("INFERENCE_PRECISION_HINT").to_string()  # "bf16", "f32"
        self._inputs = [port.get_any_name() for port in compiled.inputs]
        self._request = compiled.create_infer_request()
        self._lock = threading.Lock()  # an infer request serves one caller at a time

    def __call__(self, texts: Sequence[str]) -> NDArray[np.float32]:
        texts = list(texts)
        out: NDArray[np.float32] | None = None
        # Longest first, so each batch pads to lengths close to its own.
        order = np.argsort([-len(t) for t in texts], kind="stable")
        for lo in range(0, len(texts), self.batch_size):
            rows = order[lo : lo + self.batch_size]
            vectors = self._batch([texts[i] for i in rows])
            if out is None:
                out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
            out[rows] = vectors
        return out if out is not None else np.empty((0, 0), dtype=np.float32)

    def _batch(self, texts: list[str]) -> NDArray[np.float32]:
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="np")
        feeds = {name: np.asarray(enc[name], dtype=np.int64) for name in self._inputs}
        with self._lock:
            hidden = np.asarray(self._request.infer(feeds)[0], dtype=np.float32)
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = np.asarray(enc["attention_mask"], dtype=np.float32)[:, :, None]
            pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        if self.normalize:
            pooled = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return pooled.astype(np.float32, copy=False)


def _layout(st_model: Any) -> tuple[Any, str, bool]:
    """(transformer module, pooling mode, normalise?) of a model this module can convert, else Unsupported."""
    modules = list(st_model)
    kinds = [type(m).__name__ for m in modules]
    if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        raise Unsupported(f"modules {kinds}; converted are Transformer, Pooling and an optional Normalize")
    transformer, pool = modules[0], modules[1]
    mode = getattr(pool, "pooling_mode", None)
    if mode is None and hasattr(pool, "get_pooling_mode_str"):
        mode = pool.get_pooling_mode_str()
    if mode not in POOLINGS:
        raise Unsupported(f"pooling {mode!r}; converted are {', '.join(POOLINGS)}")
    if not hasattr(transformer, "auto_model") or not hasattr(transformer, "tokenizer"):
        raise Unsupported("the Transformer module has no auto_model or tokenizer")
    return transformer, mode, len(modules) == 3


def _key(model_path: str) -> str:
    """Names one conversion: the model's files (path, size, mtime) and the converting libraries' versions."""
    import transformers

    parts = [os.path.realpath(model_path), _import_openvino().__version__, transformers.__version__]
    root = Path(model_path)
    if root.is_dir():
        for f in sorted(root.glob("*.safetensors")) + sorted(root.glob("*.bin")) + sorted(root.glob("config.json")):
            st = f.stat()
            parts.append(f"{f.name}:{st.st_size}:{st.st_mtime_ns}")
    digest = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
    return f"{Path(model_path).name or 'model'}-{digest}"


def _converted(auto_model: Any, tokenizer: Any, model_path: str) -> Path:
    """The cached OpenVINO IR of `auto_model`, converting it first when no process has."""
    final = cache_root() / _key(model_path)
    xml = final / "model.xml"
    if xml.exists():
        return xml
    final.parent.mkdir(parents=True, exist_ok=True)
    log.info("converting %s to OpenVINO (once; cached in %s)", model_path, final)
    scratch = Path(tempfile.mkdtemp(prefix=final.name + ".", dir=final.parent))
    try:
        _convert(auto_model, tokenizer, scratch / "model.xml")
        try:
            os.rename(scratch, final)
        except OSError:
            if not xml.exists():  # not another process's finished copy: a real failure
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return xml


def _convert(auto_model: Any, tokenizer: Any, xml: Path) -> None:
    import torch

    ov = _import_openvino()
    # Two texts of different lengths: the traced graph applies the padding mask.
    example = tokenizer(["an example sentence", "another"], padding=True, return_tensors="pt")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on shape checks it freezes; BERT's hold for any shape
        auto_model.train(False)  # inference mode: no dropout in the traced graph
        model = ov.convert_model(auto_model, example_input=dict(example))
    # Keep f32 weights: the CPU plugin picks bf16 itself where the hardware has it.
    ov.save_model(model, str(xml), compress_to_fp16=False)
