"""The numba kernel behind `lshrs.kernels` (imported only when numba is installed)."""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

_M1 = np.uint64(0x5555555555555555)
_M2 = np.uint64(0x3333333333333333)
_M4 = np.uint64(0x0F0F0F0F0F0F0F0F)
_H01 = np.uint64(0x0101010101010101)


@numba.njit(cache=True, nogil=True)
def _popcount(x: Any) -> Any:
    """Set bits of a uint64: the SWAR count, which LLVM compiles to one popcnt."""
    x = x - ((x >> np.uint64(1)) & _M1)
    x = (x & _M2) + ((x >> np.uint64(2)) & _M2)
    x = (x + (x >> np.uint64(4))) & _M4
    return (x * _H01) >> np.uint64(56)


@numba.njit(cache=True, nogil=True)
def score_runs(
    words: Any, codes: Any, at: Any, bounds: Any, run_query: Any, query_words: Any, tables: Any, keep: int
) -> Any:
    """Code scores of candidates grouped in runs by query, -inf outside each run's `keep` nearest by Hamming.

    words: (n, w) uint64, every code zero-padded to whole words; codes: the
    same codes as (n, >= code_bytes) uint8; at: the code row of each
    candidate, or empty when candidate i is row i; bounds: (r + 1,) start
    of each run, and run_query: (r,) its query; query_words: (q, w) uint64;
    tables: (q, code_bytes, 256) float32, each byte value's partial
    asymmetric score (codes.code_tables).
    """
    out = np.full(bounds[-1], -np.inf, np.float32)
    distance = np.empty(bounds[-1], np.int64)
    kept = np.empty(bounds[-1], np.int64)
    counts = np.zeros(words.shape[1] * 64 + 1, np.int64)
    for r in range(len(run_query)):
        _score_run(words, codes, at, bounds[r], bounds[r + 1], run_query[r], query_words, tables, keep,
                   counts, distance, out, kept)  # fmt: skip
    return out


@numba.njit(cache=True, nogil=True)
def best_runs(
    words: Any, codes: Any, at: Any, bounds: Any, run_query: Any, query_words: Any, tables: Any, keep: int, depth: int
) -> Any:
    """`score_runs`, then each run's best `depth` candidates: their positions and scores, best first.

    Ties go to the earlier position, and a run with fewer than `depth`
    scored candidates fills up with its unscored ones (-inf) in position
    order: what a stable sort of the whole run by score would keep.
    """
    n = bounds[-1]
    scores = np.full(n, -np.inf, np.float32)
    distance = np.empty(n, np.int64)
    counts = np.zeros(words.shape[1] * 64 + 1, np.int64)
    total = 0
    for r in range(len(run_query)):
        total += min(depth, bounds[r + 1] - bounds[r])
    positions = np.empty(total, np.int64)
    best = np.empty(total, np.float32)
    kept = np.empty(n, np.int64)
    w = 0
    for r in range(len(run_query)):
        lo, hi = bounds[r], bounds[r + 1]
        m = _score_run(words, codes, at, lo, hi, run_query[r], query_words, tables, keep, counts, distance, scores,
                       kept)  # fmt: skip
        take = _select(scores, kept, m, depth)
        order = np.argsort(-scores[kept[:take]], kind="mergesort")
        for j in range(take):
            positions[w] = kept[order[j]]
            best[w] = scores[positions[w]]
            w += 1
        room = min(depth, hi - lo) - take
        for i in range(lo, hi):
            if room == 0:
                break
            if scores[i] == -np.inf:
                positions[w] = i
                best[w] = -np.inf
                w += 1
                room -= 1
    return positions, best


@numba.njit(cache=True, nogil=True)
def _select(scores: Any, kept: Any, m: int, depth: int) -> int:
    """Narrow kept[:m] (positions, ascending) to its best `depth` by score, ties to the earlier; how many remain.

    A partition finds the cut, so only the few kept are sorted afterwards,
    not all m (up to PREFILTER).
    """
    if m <= depth:
        return m
    cut = np.partition(-scores[kept[:m]], depth - 1)[depth - 1]  # the depth-th best, negated
    better = 0
    for j in range(m):
        if -scores[kept[j]] < cut:
            better += 1
    room, n = depth - better, 0
    for j in range(m):
        value = -scores[kept[j]]
        if value < cut or (value == cut and room > 0):
            if value == cut:
                room -= 1
            kept[n] = kept[j]
            n += 1
    return n


@numba.njit(cache=True, nogil=True)
def _score_run(
    words: Any, codes: Any, at: Any, lo: int, hi: int, q: int, query_words: Any, tables: Any, keep: int,
    counts: Any, distance: Any, out: Any, kept: Any,
) -> int:  # fmt: skip
    """Score one query's run of candidates lo..hi into `out` (left -inf outside the `keep` nearest).

    Returns how many were scored; their positions, ascending, are kept[:that].
    """
    width, code_bytes = words.shape[1], tables.shape[1]
    counts[:] = 0
    for i in range(lo, hi):
        row = i if len(at) == 0 else at[i]
        d = 0
        for j in range(width):
            d += _popcount(words[row, j] ^ query_words[q, j])
        distance[i] = d
        counts[d] += 1
    # the cut: every candidate nearer than `cut`, then the first `room` at it, by position
    cut, room = width * 64, hi - lo
    if hi - lo > keep:
        below, cut = 0, 0
        while below + counts[cut] < keep:
            below += counts[cut]
            cut += 1
        room = keep - below
    m = 0
    for i in range(lo, hi):
        d = distance[i]
        if d > cut or (d == cut and room == 0):
            continue
        if d == cut:
            room -= 1
        row = i if len(at) == 0 else at[i]
        score = np.float32(0.0)
        for b in range(code_bytes):
            score += tables[q, b, codes[row, b]]
        out[i] = score
        kept[m] = i
        m += 1
    return m
