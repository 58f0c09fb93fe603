"""Ranking codes: the sign bits a bucket entry carries beside its id, and how a query scores them.

A code is one sign bit per coordinate of the centred vector (unit(v) - mean,
or its projection along stored directions, see centroids.MIN_CODE_BITS).
A query scores candidates in two stages: the Hamming distance between codes
keeps the best `PREFILTER`, then the asymmetric score (the query's floats
against the candidate's signs) orders them. Pure numpy; measured in
benchmarks/centroids.py and the centroid family's docstring.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from lshrs import inputs
from lshrs.ranking import top_positions

# Candidates per query that get the asymmetric score after a Hamming pass (code_scores).
PREFILTER = 1024
# Candidates per block of asymmetric scoring: 2,048 x 48-byte codes keep the gathers
# in cache, 3x faster than one pass over all candidates.
_CODE_BLOCK = 2048

# _SIGNS[v, k] = +1 if bit k of byte v (np.packbits order, MSB first) is set, else -1
_SIGNS = np.where(np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1) > 0, 1.0, -1.0).astype(np.float32)
_POPCOUNT8 = (_SIGNS > 0).sum(axis=1)  # set bits per byte value, for numpy < 2.0
# Vector norms whose products with the mean (|mean| <= 1) stay normal float32 numbers.
_F32_NORMS = (1e-18, 1e18)


def centre(vectors: NDArray[np.float32], mean: NDArray[np.float32]) -> NDArray[np.float32]:
    """unit(vector) - mean: what the codes take the signs of, and what a query ranks with."""
    x = np.asarray(vectors, dtype=np.float32)
    norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))[:, None]  # float64: no overflow
    return (x / np.where(norms > 0, norms, 1.0) - mean).astype(np.float32)


def rank_codes(
    vectors: NDArray[np.float32], mean: NDArray[np.float32], *, bits: int | None = None
) -> NDArray[np.uint8]:
    """One sign bit per dimension of unit(vector) - mean, packed, shape (n, ceil(bits / 8)).

    `bits` keeps only the first dimensions (default all). The code is what a
    bucket entry carries beside the id, so ranking needs no store read.
    """
    x = np.asarray(vectors, dtype=np.float32)
    bits = x.shape[1] if bits is None else inputs.positive("bits", bits)
    if bits > x.shape[1]:
        raise ValueError(f"bits: expected at most the dimension {x.shape[1]}, got {bits}")
    # sign(x / |x| - mean) without dividing: x > |x| * mean (|x| > 0)
    norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))[:, None]  # float64: no overflow
    if len(norms) and _F32_NORMS[0] < norms.min() and norms.max() < _F32_NORMS[1]:
        # the usual case, in float32: 2.9x faster than comparing against a float64 product
        return np.packbits(x[:, :bits] > norms.astype(np.float32) * mean[:bits], axis=1)
    return np.packbits(x[:, :bits] > norms * mean[:bits], axis=1)


def prefilter(distances: NDArray[np.int64]) -> NDArray[np.int64]:
    """Positions of one query's PREFILTER smallest distances, ascending (all of them when it has fewer).

    Distances tied at the cut are taken in position order, as the compiled
    scorer takes them (lshrs.kernels), so both keep the same candidates.
    """
    if len(distances) <= PREFILTER:
        return np.arange(len(distances))
    return top_positions(-distances, PREFILTER)


def hamming_pairs(
    query_codes: NDArray[np.uint8], query_index: NDArray[np.int64], codes: NDArray[np.uint8]
) -> NDArray[np.int64]:
    """Hamming distance between each candidate's code and its query's, shape (m,)."""
    if len(query_codes) == 1:
        return hamming_one(query_codes, codes)
    return _popcount(np.bitwise_xor(_words(codes), _words(query_codes)[query_index]))


def hamming_one(query_code: NDArray[np.uint8], codes: NDArray[np.uint8]) -> NDArray[np.int64]:
    """Hamming distance between one query's code, shape (1, w), and every code, shape (m,).

    XORs against the query's code broadcast, not copied once per candidate:
    with the column sums of `_popcount` 0.1 ms for 11,000 48-byte codes
    instead of 0.39 ms.
    """
    return _popcount(np.bitwise_xor(_words(codes), _words(query_code)))


def hamming(query_codes: NDArray[np.uint8], codes: NDArray[np.uint8]) -> NDArray[np.int64]:
    """Hamming distance between every query code and every code, shape (q, m)."""
    return _popcount(np.bitwise_xor(_words(query_codes)[:, None, :], _words(codes)[None, :, :]))


def _words(codes: NDArray[np.uint8]) -> NDArray[Any]:
    """Codes as contiguous 8-byte words when their width allows (a popcount per word, not per byte)."""
    codes = np.ascontiguousarray(codes)
    return codes.view(np.uint64) if codes.shape[-1] % 8 == 0 else codes


def _popcount(xor: NDArray[Any]) -> NDArray[np.int64]:
    """Set bits summed over the last axis.

    Summed column by column: numpy's reduction over a short last axis
    costs more than the popcounts themselves (0.2 ms against 0.02 ms for
    11,000 rows of six words).
    """
    if hasattr(np, "bitwise_count"):
        counts = np.bitwise_count(xor)
    else:  # numpy < 2.0
        counts = _POPCOUNT8[np.ascontiguousarray(xor).view(np.uint8)]
    if counts.ndim == 1:
        return counts.astype(np.int64)
    total = counts[..., 0].astype(np.int64)
    for column in range(1, counts.shape[-1]):
        total += counts[..., column]
    return total


def asymmetric_scores(
    query_centred: NDArray[np.float32], query_index: NDArray[np.int64], codes: NDArray[np.uint8]
) -> NDArray[np.float32]:
    """Estimated <query, candidate - mean> per candidate, shape (m,); higher is closer.

    The query keeps its floats and the candidate its signs:
    score = sum_i q[i] * (+1 if bit i else -1). This keeps more of the true
    top-10 than Hamming at the same rerank depth (module docstring). A
    (code_bytes, 256) table per query holds each byte value's partial sum, so
    a candidate costs code_bytes gathers and a sum, in blocks that stay in cache.
    Pass `centre(queries, mean)`; the plain unit query ranks the same (the
    difference is a constant per query).
    """
    width = codes.shape[1]
    tables = code_tables(query_centred, width).reshape(-1)  # (q, width, 256) flat
    rows = np.asarray(query_index, dtype=np.intp) * (width * 256)
    columns = np.arange(width, dtype=np.intp) * 256
    ones = np.ones(width, dtype=np.float32)
    out = np.empty(len(codes), dtype=np.float32)
    for start in range(0, len(codes), _CODE_BLOCK):
        stop = start + _CODE_BLOCK
        out[start:stop] = np.take(tables, codes[start:stop] + (rows[start:stop, None] + columns)) @ ones
    return out


def code_tables(query_centred: NDArray[np.float32], width: int) -> NDArray[np.float32]:
    """Each query's partial asymmetric score of every byte value at every code byte, shape (q, width, 256)."""
    q = np.asarray(query_centred, dtype=np.float32)
    padded = np.zeros((len(q), width * 8), dtype=np.float32)
    padded[:, : min(q.shape[1], width * 8)] = q[:, : width * 8]
    return np.ascontiguousarray(padded.reshape(len(q), width, 8) @ _SIGNS.T)


def code_words(codes: NDArray[np.uint8]) -> tuple[NDArray[np.uint64], NDArray[np.uint8]]:
    """Codes as the compiled scorer reads them: 8-byte words, and the bytes those words cover.

    A bucket read's codes are a read-only view into the bytes Redis sent,
    one entry (id and code) apart; codes of whole words are read there in
    place, unaligned, instead of copied out first (60 us of a 1.3 ms query
    at 11,000 candidates). Anything else is copied into padded rows.
    """
    in_place = len(codes) > 1 and codes.shape[1] % 8 == 0 and codes.strides[1] == 1
    if in_place and not codes.flags.c_contiguous and not codes.flags.writeable:
        return codes.view(np.uint64), codes
    padded = padded_codes(codes)
    return padded.view(np.uint64), padded


def padded_codes(codes: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Codes as a contiguous (n, 8 * words) array, zero-padded to whole 8-byte words (the compiled scorer's input)."""
    width = codes.shape[1]
    if width % 8 == 0:
        return np.ascontiguousarray(codes)
    padded = np.zeros((len(codes), -(-width // 8) * 8), dtype=np.uint8)
    padded[:, :width] = codes
    return padded
