"""The index definition: the only module that spells the fields of an index's meta hash.

An index *is* its meta hash in Redis: the parameters that fix its hash
functions, the hash family's own arrays (the hyperplanes), the bucket layout,
and a few fields that change while it lives (build state and checkpoint, the
entry counter, the generation, the id counter, the saved probe count). This
module turns that hash into typed values and back. It does no I/O (the Redis
commands are in buckets.py) and knows nothing of queries, stores or writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

FORMAT_VERSION = 2  # ids only in the buckets (hyperplanes)
# Bucket entries carry ranking codes after the ids (the centroid family): an
# lshrs that reads only format 2 must refuse such an index, not misread it.
FORMAT_WITH_CODES = 3
READABLE_FORMATS = (FORMAT_VERSION, FORMAT_WITH_CODES)

# -- field names ------------------------------------------------------------------
# Fixed when the index is (re)defined:
DIM = "dim"
NUM_TABLES = "num_tables"
NUM_BITS = "num_bits"
SEED = "seed"
ID_BYTES = "id_bytes"
FORMAT = "format"
FAMILY = "family"  # absent in indexes made before there was a choice: LEGACY_FAMILY
GROUP_BITS = "group_bits"
SMALL_MAX = "small_max"
# Changed while the index lives:
NUM_PROBES = "num_probes"  # saved by tune(apply=True)
RERANK_DEPTH = "rerank_depth"  # saved by tune(apply=True) on a centroid index
MODEL = "model"  # the embedding model's name, saved at the first ingest of texts (text_model.py)
STORE = "store"  # JSON: the store's kind and table mapping, never credentials (Store.describe)
NEXT_ID = "next_id"  # the counter ingest() draws fresh ids from
BUILD = "build"  # a BuildState
INDEXED_THROUGH = "indexed_through"  # index()'s checkpoint: the last id of the last written chunk
ENTRIES = "entries"  # bucket entries written minus removed
GENERATION = "generation"  # moves whenever entries are removed (sketch.py)

# The parameters a user may pass to LSHRS(); a conflict with a stored index raises.
PARAMS = (DIM, NUM_TABLES, NUM_BITS, SEED, ID_BYTES)
# What survives `index(rebuild=True)`: everything but the build state, checkpoint and counters.
_KEPT_ON_REBUILD = (*PARAMS, FORMAT, FAMILY, GROUP_BITS, SMALL_MAX, NEXT_ID, NUM_PROBES, RERANK_DEPTH, MODEL, STORE)

LEGACY_FAMILY = "hyperplanes"  # the family of a definition that names none
# New indexes: centroid buckets with ranking codes. On 121,900 real MiniLM vectors
# (benchmarks/results/compare.md) they reach recall@10 0.96 reading 7 % of the corpus
# as codes and reranking 100 vectors, where hyperplanes needed 12-19 % as candidates.
DEFAULT_FAMILY = "centroids"
# Defaults from benchmarks/compare.py on 121,900 real MiniLM embeddings
# (Wikipedia passages + WordNet glosses; benchmarks/results/compare.md):
# L=16, K=14, 128 probes reached recall@10 0.973 reranking 19% of the corpus
# (p50 33 ms on the 2-core bench machine; 0.966 reranking 0.96% at 21 ms
# with top_p=0.05), at 104 Redis bytes per vector: the fastest setting at
# recall >= 0.95 with 16 tables when every candidate is reranked. L=24, K=14,
# 64 probes is faster but costs 155 B/vector. The earlier L=12, K=14, 12
# probes (tuned on clustered synthetic vectors) reached only 0.52 there.
# `LSHRS.tune` fits a user's own data and size.
DEFAULT_NUM_TABLES = 16
DEFAULT_NUM_BITS = 14
DEFAULT_NUM_PROBES = 128
DEFAULT_SEED = 0
DEFAULT_ID_BYTES = 4


class BuildState(str, Enum):
    """Where `index()` over the store stands, saved so that a crashed build is finished by the next run."""

    FRESH = "fresh"  # a first build into empty buckets: it only appends
    RUNNING = "running"  # resuming or adding to existing buckets: each chunk's ids are removed before they go in
    DONE = "done"
    REDEFINE = "redefine"  # new tables/bits (tune's apply): the old buckets are still to drop


@dataclass(frozen=True)
class Definition:
    """What fixes an index's hash functions and bucket layout; read back by every process that attaches."""

    dim: int
    num_tables: int
    num_bits: int
    seed: int
    id_bytes: int
    group_bits: int
    small_max: int
    family: str = LEGACY_FAMILY
    # the family's own fields (e.g. the hyperplanes as raw float32), as stored
    family_fields: Mapping[str, bytes | int] = field(default_factory=dict, repr=False)

    @property
    def params(self) -> dict[str, int]:
        return {DIM: self.dim, NUM_TABLES: self.num_tables, NUM_BITS: self.num_bits, SEED: self.seed,
                ID_BYTES: self.id_bytes}  # fmt: skip

    def to_meta(self) -> dict[str, Any]:
        return {
            **self.params,
            FORMAT: FORMAT_VERSION if self.family == LEGACY_FAMILY else FORMAT_WITH_CODES,
            FAMILY: self.family,
            GROUP_BITS: self.group_bits,
            SMALL_MAX: self.small_max,
            **self.family_fields,
        }

    def check_conflicts(self, name: str, requested: Mapping[str, int], family: str | None = None) -> None:
        """Raise ValueError naming every requested parameter (and family) this index does not have."""
        if family is not None and family != self.family:
            raise ValueError(f"index {name!r} exists with family={self.family!r}, not {family!r}")
        have = self.params
        bad = ", ".join(f"{k}={v} (index has {have[k]})" for k, v in requested.items() if have[k] != v)
        if bad:
            raise ValueError(f"index {name!r} exists with other parameters: {bad}")


@dataclass(frozen=True)
class Meta:
    """A meta hash as read from Redis: the definition, and the fields that change while the index lives."""

    definition: Definition
    build: BuildState | None
    indexed_through: int | None
    num_probes: int | None
    rerank_depth: int | None
    model: str | None
    raw: Mapping[str, bytes] = field(repr=False)

    @classmethod
    def parse(cls, name: str, raw: Mapping[str, bytes]) -> Meta:
        """Decode a meta hash; ValueError for one this lshrs cannot read (another format, missing fields)."""
        version = int(raw.get(FORMAT, b"0"))
        if version not in READABLE_FORMATS:
            readable = " and ".join(map(str, READABLE_FORMATS))
            raise ValueError(f"index {name!r}: format version {version}, this lshrs reads {readable}")
        family = raw.get(FAMILY, LEGACY_FAMILY.encode()).decode()
        fixed = {*PARAMS, FORMAT, FAMILY, GROUP_BITS, SMALL_MAX, NUM_PROBES, RERANK_DEPTH, MODEL, STORE, NEXT_ID, BUILD,
                 INDEXED_THROUGH, ENTRIES, GENERATION}  # fmt: skip
        definition = Definition(
            **{k: int(raw[k]) for k in PARAMS},
            group_bits=int(raw[GROUP_BITS]),
            small_max=int(raw[SMALL_MAX]),
            family=family,
            family_fields={k: v for k, v in raw.items() if k not in fixed},
        )
        build = raw.get(BUILD)
        return cls(
            definition,
            BuildState(build.decode()) if build else None,
            int(raw[INDEXED_THROUGH]) if INDEXED_THROUGH in raw else None,
            int(raw[NUM_PROBES]) if NUM_PROBES in raw else None,
            int(raw[RERANK_DEPTH]) if RERANK_DEPTH in raw else None,
            raw[MODEL].decode() if MODEL in raw else None,
            raw,
        )

    def kept_on_rebuild(self) -> dict[str, bytes]:
        """The fields a rebuild keeps: the definition, the id counter and the saved probes."""
        return {k: v for k, v in self.raw.items() if k in _KEPT_ON_REBUILD or k in self.definition.family_fields}

    def next_id(self) -> bytes | None:
        return self.raw.get(NEXT_ID)


FAMILIES = ("hyperplanes", "centroids")


def check_family(family: Any, requested: Mapping[str, int]) -> str | None:
    """The hash family asked for (None: the index's, or the default for a new one).

    Tables or bits without a family ask for hyperplanes: they are its parameters.
    """
    clash = [k for k in (NUM_TABLES, NUM_BITS) if k in requested]
    if family is None:
        return "hyperplanes" if clash else None
    if family not in FAMILIES:
        raise ValueError(f"family: expected one of {', '.join(map(repr, FAMILIES))}, got {family!r}")
    if family != "hyperplanes" and clash:
        raise ValueError(f"{', '.join(clash)}: parameters of the hyperplanes family; a {family} index has nlist")
    return str(family)


def check_requested(params: Mapping[str, Any]) -> dict[str, int]:
    """The parameters a user passed (None = not given), type- and range-checked before any I/O."""
    given = {k: v for k, v in params.items() if v is not None}
    for key, value in given.items():
        if key not in PARAMS:
            raise TypeError(f"unknown index parameter {key!r}")
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{key}: expected an int, got {type(value).__name__}")
    if NUM_BITS in given and not 1 <= given[NUM_BITS] <= 30:
        raise ValueError(f"num_bits: expected 1..30, got {given[NUM_BITS]}")
    if ID_BYTES in given and given[ID_BYTES] not in (4, 8):
        raise ValueError(f"id_bytes: expected 4 or 8, got {given[ID_BYTES]}")
    for key in (DIM, NUM_TABLES):
        if key in given and given[key] < 1:
            raise ValueError(f"{key}: expected >= 1, got {given[key]}")
    return given
