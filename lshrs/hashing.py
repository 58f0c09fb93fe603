"""The hash-family interface: how vectors and queries pick their buckets.

An index is created with one family, named in its definition and rebuilt
from the definition's fields by every process that attaches. The verbs,
the bucket layout and the audit see only this interface, so a new family
(drawn from the data, say) plugs in by implementing it and registering its
kind here; nothing else needs to know which family an index uses. A family
is numpy only: it never reads Redis or the store itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from lshrs.definition import Definition


class HashFamily(Protocol):
    """Maps vectors to bucket codes: `num_tables` entries per vector, each code below ``2**num_bits``.

    `codes` must give the same buckets for the same float32 vector whatever
    batch it arrives in: a replace or delete finds a vector's entries by
    re-hashing its stored copy.
    """

    @property
    def kind(self) -> str:
        """The family's name in the index definition."""
        ...

    @property
    def num_tables(self) -> int:
        """Bucket entries per vector."""
        ...

    @property
    def num_bits(self) -> int:
        """Codes lie in [0, 2**num_bits)."""
        ...

    @property
    def trained(self) -> bool:
        """False only for a centroid index still too small to train: no buckets, queries scan the store."""
        ...

    @property
    def dim(self) -> int: ...

    @property
    def default_probes(self) -> int:
        """Buckets a query visits per table when neither the caller nor the tuner chose."""
        ...

    @property
    def code_bytes(self) -> int:
        """Bytes of ranking code stored beside each id in a bucket entry; 0 for a family without codes."""
        ...

    def rank_codes(self, vectors: NDArray[np.float32]) -> NDArray[np.uint8]:
        """The ranking code of each vector, shape (n, code_bytes)."""
        ...

    def code_scores(
        self,
        queries: NDArray[np.float32],
        query_index: NDArray[np.int64],
        codes: NDArray[np.uint8],
        at: NDArray[np.int64] | None = None,
    ) -> NDArray[np.float32]:
        """How close each candidate's code is to its query (higher is closer), shape (m,).

        Candidate i's code is ``codes[at[i]]`` when `at` is given, else ``codes[i]``.
        """
        ...

    def best_by_code(
        self,
        queries: NDArray[np.float32],
        query_index: NDArray[np.int64],
        codes: NDArray[np.uint8],
        at: NDArray[np.int64] | None,
        depth: int,
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """Positions and `code_scores` of each query's best `depth` candidates, best first, ties by position."""
        ...

    def codes(self, vectors: NDArray[np.float32]) -> NDArray[np.int64]:
        """Bucket code of each vector in each table, shape (n, num_tables)."""
        ...

    def probes(self, vectors: NDArray[np.float32], num_probes: int) -> NDArray[np.int64]:
        """Codes a query visits per table, best first, shape (n, num_tables, probes); probe 0 is `codes`."""
        ...

    def fields(self) -> dict[str, bytes | int]:
        """What the family keeps in the index definition besides the shared parameters."""
        ...


def family_for(definition: Definition) -> HashFamily:
    """The hash family an index was defined with, rebuilt from its stored fields."""
    from lshrs.centroids import Centroids
    from lshrs.hyperplanes import Hyperplanes

    families: Mapping[str, Any] = {Hyperplanes.kind: Hyperplanes, Centroids.kind: Centroids}
    maker = families.get(definition.family)
    if maker is None:
        raise ValueError(f"index hash family {definition.family!r} is not known to this lshrs ({', '.join(families)})")
    return maker.from_definition(definition)  # type: ignore[no-any-return]
