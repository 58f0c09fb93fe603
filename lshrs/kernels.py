"""Compiled code scoring, when numba is installed (``pip install 'lshrs[fast]'``); numpy otherwise.

A centroid query scores every candidate in its probed buckets by its ranking
code: the Hamming distance to the query's code keeps the best
`codes.PREFILTER`, and those get the asymmetric score (codes.py). In numpy
that is a dozen array passes per query, and a batch gathers every query's
codes first; compiled, it is one pass over each query's candidates with
nothing gathered. On the real corpus (121,800 MiniLM vectors, the
defaults: nlist 1,024, 96 probes; benchmarks/results/floor.md, both
scorers interleaved in one run) `query_many` of 300 queries answered 1,480
queries/s against numpy's 854, and one `query` took 1.93 ms against 2.22
(p50); the answers were the same (and tests/test_kernels.py compares them).

The kernel selects exactly what the numpy path selects (`codes.prefilter`
breaks ties at the cut by position, as this does); the scores agree to
float32 rounding, since the two sum the same table entries in different
orders. Compiled on first use and cached on disk by numba (about 0.7 s
once, then a load). ``LSHRS_KERNELS=numpy`` in the environment keeps numpy.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cache

import numpy as np
from numpy.typing import NDArray

ScoreRuns = Callable[..., NDArray[np.float32]]


@cache
def score_runs() -> ScoreRuns | None:
    """The compiled scorer (`lshrs._compiled.score_runs`), or None without numba or with LSHRS_KERNELS=numpy."""
    if os.environ.get("LSHRS_KERNELS", "").lower() == "numpy":
        return None
    try:
        from lshrs import _compiled
    except ImportError:  # numba is not installed
        return None
    return _compiled.score_runs  # type: ignore[no-any-return]
