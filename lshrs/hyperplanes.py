"""Random-hyperplane LSH (SimHash) with query-directed multi-probe: the `hyperplanes` hash family.

Needs no training, so it is right for small or fast-changing data; on real
sentence embeddings it hands back a large share of the corpus as candidates
(benchmarks/results/compare.md). Pure numpy: every function takes a whole
batch and does one matrix product, so no verb loops over vectors in Python.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from functools import cache
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from lshrs.definition import DEFAULT_NUM_PROBES, Definition

# Perturbation templates are drawn from the flips of the `_TEMPLATE_BITS`
# projections closest to zero; sets of up to three flips cover the first few
# dozen probes, far more than any sensible `num_probes`.
_TEMPLATE_BITS = 10
_TEMPLATE_MAX_FLIPS = 3


def make_planes(dim: int, num_tables: int, num_bits: int, seed: int) -> NDArray[np.float32]:
    """Draw the hyperplanes, shape (dim, num_tables * num_bits).

    They are stored in Redis with the index rather than regenerated from the
    seed, because numpy does not promise one random stream across versions.
    """
    rng = np.random.default_rng(seed)
    return rng.standard_normal((dim, num_tables * num_bits)).astype(np.float32)


# The definition field holding the planes, raw little-endian float32 of shape (dim, tables * bits).
PLANES = "planes"


@dataclass(frozen=True)
class Hyperplanes:
    """`num_tables` codes of `num_bits` sign bits each: one bit per random hyperplane."""

    kind: ClassVar[str] = "hyperplanes"
    planes: NDArray[np.float32]
    num_tables: int
    num_bits: int
    _planes64: NDArray[np.float64] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_planes64", self.planes.astype(np.float64))

    @classmethod
    def draw(cls, dim: int, num_tables: int, num_bits: int, seed: int) -> Hyperplanes:
        return cls(make_planes(dim, num_tables, num_bits, seed), num_tables, num_bits)

    @classmethod
    def from_definition(cls, definition: Definition) -> Hyperplanes:
        raw = bytes(definition.family_fields[PLANES])  # type: ignore[arg-type]
        planes = np.frombuffer(raw, dtype="<f4").reshape(definition.dim, -1).astype(np.float32)
        return cls(planes, definition.num_tables, definition.num_bits)

    trained: ClassVar[bool] = True  # nothing to train
    code_bytes: ClassVar[int] = 0  # candidates are ranked by collision count (and sketches, see sketch.py)

    @property
    def dim(self) -> int:
        return int(self.planes.shape[0])

    @property
    def default_probes(self) -> int:
        return DEFAULT_NUM_PROBES

    def fields(self) -> dict[str, bytes | int]:
        return {PLANES: self.planes.astype("<f4").tobytes()}

    def rank_codes(self, vectors: NDArray[np.float32]) -> NDArray[np.uint8]:
        return np.empty((len(vectors), 0), np.uint8)

    def code_scores(
        self,
        queries: NDArray[np.float32],
        query_index: NDArray[np.int64],
        codes: NDArray[np.uint8],
        at: NDArray[np.int64] | None = None,
    ) -> NDArray[np.float32]:
        raise TypeError("hyperplanes keep no ranking codes: their candidates are ranked by collision count")

    def best_by_code(
        self,
        queries: NDArray[np.float32],
        query_index: NDArray[np.int64],
        codes: NDArray[np.uint8],
        at: NDArray[np.int64] | None,
        depth: int,
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        raise TypeError("hyperplanes keep no ranking codes: their candidates are ranked by collision count")

    def project(self, vectors: NDArray[np.float32]) -> NDArray[np.float64]:
        """Projections, shape (n, tables, bits).

        Computed in float64 from the float32 vectors so the same stored vector
        always lands in the same buckets, whatever the batch it arrives in:
        removal on upsert and delete re-hashes the stored copy.
        """
        proj = vectors.astype(np.float64) @ self._planes64
        return proj.reshape(len(vectors), self.num_tables, self.num_bits)

    def codes(self, vectors: NDArray[np.float32]) -> NDArray[np.int64]:
        """Bucket code of each vector in each table, shape (n, tables)."""
        return pack_bits(self.project(vectors) > 0)

    def probes(self, vectors: NDArray[np.float32], num_probes: int) -> NDArray[np.int64]:
        """Codes to visit per query and table, best first, shape (n, tables, probes).

        Probe 0 is the home bucket; the rest flip the sets of bits whose
        projections are closest to zero, ordered by the summed squared
        distance of the flipped projections (query-directed probing).
        """
        proj = self.project(vectors)
        home = pack_bits(proj > 0)
        if num_probes <= 1:
            return home[:, :, None]
        flips = flip_masks(np.abs(proj), num_probes - 1)
        return np.concatenate([home[:, :, None], home[:, :, None] ^ flips], axis=2)


def pack_bits(bits: NDArray[np.bool_]) -> NDArray[np.int64]:
    """Pack the last axis of a boolean array into integers, bit i = axis i."""
    weights = np.left_shift(np.int64(1), np.arange(bits.shape[-1], dtype=np.int64))
    return bits.astype(np.int64) @ weights


def flip_masks(margins: NDArray[np.float64], count: int) -> NDArray[np.int64]:
    """The `count` cheapest bit-flip masks for each (query, table).

    Args:
        margins: |projection| per bit, shape (n, tables, bits).
        count: masks wanted per (query, table).
    """
    n_bits = margins.shape[-1]
    templates = _templates(min(n_bits, _TEMPLATE_BITS))
    count = min(count, len(templates))
    order = np.argsort(margins, axis=-1)[..., : templates.shape[1]]
    nearest = np.take_along_axis(margins, order, axis=-1)
    # score of each template = sum of squared margins of the bits it flips
    scores = (nearest**2) @ templates.T.astype(np.float64)
    best = np.argsort(scores, axis=-1, kind="stable")[..., :count]
    # turn rank-space templates into position-space bit masks
    position_bits = np.left_shift(np.int64(1), order)
    masks = position_bits @ templates.T.astype(np.int64)
    return np.take_along_axis(masks, best, axis=-1)


@cache
def _templates(n_bits: int) -> NDArray[np.int8]:
    """All non-empty sets of up to three of the `n_bits` nearest bits, as 0/1 rows."""
    rows = []
    for size in range(1, _TEMPLATE_MAX_FLIPS + 1):
        for combo in itertools.combinations(range(n_bits), size):
            row = np.zeros(n_bits, dtype=np.int8)
            row[list(combo)] = 1
            rows.append(row)
    return np.array(rows, dtype=np.int8)
