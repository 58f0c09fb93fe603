"""Compiled code scoring, when numba is installed (``pip install 'lshrs[fast]'``); numpy otherwise.

A centroid query scores every candidate in its probed buckets by its ranking
code: the Hamming distance to the query's code keeps the best
`codes.PREFILTER`, and those get the asymmetric score (codes.py). In numpy
that is a dozen array passes per query, and a batch gathers every query's
codes first; compiled, it is one pass over each query's candidates with
nothing gathered. On the real corpus (121,800 MiniLM vectors, the
defaults: nlist 1,024, 96 probes; benchmarks/results/floor.md, both
scorers interleaved in one run) `query_many` of 300 queries answered 1,747
queries/s against numpy's 933, and one `query` took 1.56 ms against 1.88
(p50); the answers were the same (and tests/test_kernels.py compares them).

A query that reranks a fixed depth (no top_p, no filter) also keeps its
best `depth` inside the kernel (`best_runs`), so nothing the length of its
candidate list is sorted or converted afterwards.

The kernels select exactly what the numpy path selects (`codes.prefilter`
and `ranking.best_per_query` break ties at the cut by position, as these do); the scores agree to
float32 rounding, since the two sum the same table entries in different
orders. Compiled on first use and cached on disk by numba (about 0.7 s
once, then a load). ``LSHRS_KERNELS=numpy`` in the environment keeps numpy.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from functools import cache

import numpy as np
from numpy.typing import NDArray

ScoreRuns = Callable[..., NDArray[np.float32]]
BestRuns = Callable[..., tuple[NDArray[np.int64], NDArray[np.float32]]]

log = logging.getLogger("lshrs")


@cache
def score_runs() -> ScoreRuns | None:
    """The compiled scorer (`lshrs._compiled.score_runs`), or None without numba or with LSHRS_KERNELS=numpy.

    Compiled here, on a tiny input, the first time it is asked for: a numba
    that imports but cannot compile or cache (an LLVM or platform problem, a
    cache directory it cannot write and cannot replace) then costs a warning
    and the numpy path, not a failed query.
    """
    if os.environ.get("LSHRS_KERNELS", "").lower() == "numpy":
        return None
    try:  # numba sets up its disk cache as the module defines the kernel: that can fail too
        from lshrs import _compiled

        _warm_up(_compiled.score_runs, _compiled.best_runs)
    except ImportError:  # numba is not installed
        return None
    except Exception as exc:  # noqa: BLE001 - any failure of the compiler leaves numpy, which always works
        log.warning("lshrs: numba could not compile the code scorer (%s); scoring with numpy", exc)
        return None
    return _compiled.score_runs  # type: ignore[no-any-return]


def best_runs() -> BestRuns | None:
    """The compiled scorer that also keeps each query's best candidates (`_compiled.best_runs`), or None.

    Available exactly when `score_runs()` is: one guard decides for both.
    """
    if score_runs() is None:
        return None
    from lshrs import _compiled

    return _compiled.best_runs  # type: ignore[no-any-return]


def _warm_up(scorer: ScoreRuns, best: BestRuns) -> None:
    """One call of each kernel with the types real calls have, so numba compiles (or loads its cache) now.

    Codes come either padded into their own array, or as a view into the
    bucket read's bytes (4-byte id, then the code: rows 52 bytes apart).
    """
    bounds, run_query = np.array([0, 2], np.int64), np.zeros(1, np.int64)
    tables = np.zeros((1, 8, 256), np.float32)
    padded = np.zeros((2, 8), np.uint8)
    read = np.frombuffer(bytes(24), dtype=[("id", "<u4"), ("code", "u1", (8,))])["code"]
    for codes in (padded, read):
        words, query = codes.view(np.uint64), padded[:1].view(np.uint64)
        scorer(words, codes, np.empty(0, np.int64), bounds, run_query, query, tables, 1)
        best(words, codes, np.empty(0, np.int64), bounds, run_query, query, tables, 1, 1)
