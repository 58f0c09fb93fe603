"""`LSHRS.tune`: measure (tables, bits, probes) on a sample of the user's vectors, pick the fastest that meets a recall.

How it measures, and why:

- The sample and its true neighbours: see tune_sample.py; the rows and the
  pick: tune_report.py. The user's index changes only through `apply`
  (a redefinition by the `Attachment`, then `index()`).
- Each (tables, bits) pair is built as a scratch index on the same Redis,
  under a temporary name (`SCRATCH_PREFIX`), over a `MemoryStore` holding the
  sample; it is deleted afterwards, also on errors and Ctrl-C. The user's
  buckets and store are only read.
- Recall is measured on the candidates the probes return (what a reranking
  query finds when the probes find at least top_k ids), so the widening and
  exact fallback that rescue a short query on a small scratch index do not
  inflate it. Latency is that of real single queries on the scratch index.
- The candidate fraction (candidates among the uniform sample / its rows)
  does not depend on the store or on the corpus size, so it is scaled to
  the full index to estimate what a query there reranks, and the latency
  estimate adds those extra candidates at the per-candidate read cost
  measured on the user's store.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import redis
from numpy.typing import NDArray

from lshrs import inputs, progress, ranking, search, steps, tune_probes
from lshrs.buckets import Buckets
from lshrs.definition import DEFAULT_FAMILY, NUM_PROBES, BuildState
from lshrs.sketch import SketchCache
from lshrs.stores.memory import MemoryStore
from lshrs.stores.pages import Pages
from lshrs.tune_probes import ProbeTuneResult
from lshrs.tune_report import LATENCY_TIE, TuneResult, TuneRow, pick
from lshrs.tune_sample import Sample, Source, draw, rerank_cost, round_robin_ms

__all__ = ["LATENCY_TIE", "SCRATCH_PREFIX", "TuneResult", "TuneRow", "default_bits", "pick", "tune"]

if TYPE_CHECKING:
    from lshrs.index import LSHRS

# Scratch index names: SCRATCH_PREFIX + 16 hex digits. A tuner killed with
# SIGKILL leaves one behind; `LSHRS(name=...).clear()` removes it.
SCRATCH_PREFIX = "_lshrs-tune-"

# The defaults of LSHRS.tune, tune() and `lshrs tune`.
DEFAULT_TARGET_RECALL = 0.95
DEFAULT_TOP_K = 10
DEFAULT_SAMPLE_SIZE = 20_000
DEFAULT_NUM_QUERIES = 200
DEFAULT_TABLES = (8, 12, 16)
DEFAULT_PROBES = (4, 8, 16, 32, 64, 128)  # 128: the lshrs default, needed by real MiniLM data (compare.md)
# Bits around log2(index size) - 4: about 16 vectors per bucket of one table
# for uniform data. Measured best settings sit on both sides: K = 14 at 800k
# (docs/sizing.md, log2 - 5.6), K = 8..10 on 4k MiniLM passages (log2 - 2..4).
# Three values two apart cover both; a grid can name others.
BITS_BELOW_LOG2 = 4
BITS_STEP = 2
MIN_BITS, MAX_BITS = 4, 30

# top_p values tried on the fastest settings that meet the target reranking
# every candidate (TOP_P_SETTINGS of them): top_p ranks candidates by sign
# sketch (lshrs/sketch.py) and reranks only that share, so it can only lose
# recall, and settings below the target are not worth it.
DEFAULT_TOP_P = (0.1, 0.05, 0.02)
TOP_P_SETTINGS = 3

# Queries timed one by one per setting (p50); recall uses every held-out query.
LATENCY_QUERIES = 50
# Queries per bucket read when counting candidates: one Lua call per chunk
# keeps each call short on a Redis that is serving the user's traffic.
QUERY_CHUNK = 8


@dataclass(frozen=True)
class Bench:
    """What every measurement needs: the sample, top_k, and how to scale to the full index."""

    sample: Sample
    top_k: int
    index_size: int
    cost_ms: float  # per candidate read from the user's store (rerank_cost)


def tune(
    lsh: LSHRS,
    vectors: Any = None,
    *,
    target_recall: float = DEFAULT_TARGET_RECALL,
    top_k: int = DEFAULT_TOP_K,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    num_queries: int = DEFAULT_NUM_QUERIES,
    grid: Mapping[str, Sequence[int]] | None = None,
    apply: bool = False,
    seed: int = 0,
    top_p: Sequence[float] = DEFAULT_TOP_P,
) -> TuneResult | ProbeTuneResult:
    """`LSHRS.tune` (see there): check everything, sample, measure every setting, pick, optionally apply."""
    _check_target(target_recall)
    inputs.check_top(top_k, None)
    if lsh.hasher is None:
        lsh.attachment.attach()
    if lsh.hasher is None and (lsh.attachment.requested_family or DEFAULT_FAMILY) != "hyperplanes":
        raise ValueError(
            f"tune: index {lsh.name!r} does not exist yet; a centroid index is tuned once index() has trained it "
            "(pass family='hyperplanes' to tune hyperplane settings before building)"
        )
    if lsh.hasher is not None and lsh.hasher.kind != "hyperplanes":
        return tune_probes.tune(lsh, vectors, target_recall=target_recall, top_k=top_k, num_queries=num_queries,
                                grid=grid, apply=_check_apply(apply), seed=seed)  # fmt: skip
    shares = _check_top_p(top_p)
    inputs.positive("sample_size", sample_size)
    inputs.positive("num_queries", num_queries)
    _check_apply(apply)
    wanted = _check_grid(grid)
    rng = np.random.default_rng(seed)
    source = Source(lsh.store, lsh.name, lsh.dim, lsh.batch_size, lsh.show_progress)
    sample, index_size = draw(source, vectors, sample_size, num_queries, top_k, rng)
    cost = rerank_cost(source, sample.cost_ids) if index_size > sample.sampled else 0.0
    rows = measure(lsh, Bench(sample, top_k, index_size, cost), expand_grid(wanted, index_size), target_recall, shares)
    chosen = pick(rows, target_recall)
    result = TuneResult(
        rows=tuple(rows),
        chosen=chosen,
        met=chosen is not None,
        target_recall=float(target_recall),
        top_k=top_k,
        sample_size=sample.sampled,
        num_queries=len(sample.queries),
        index_size=index_size,
        truth_over=sample.truth_over,
    )
    if apply and chosen is not None:
        apply_setting(lsh, chosen, sample.corpus.shape[1])
        result = replace(result, applied=True)
    return result


# -- arguments ----------------------------------------------------------------


def _check_target(target: Any) -> None:
    if not isinstance(target, numbers.Real) or isinstance(target, bool):
        raise TypeError(f"target_recall: expected a float in (0, 1], got {type(target).__name__}")
    if math.isnan(target) or not 0.0 < float(target) <= 1.0:
        raise ValueError(f"target_recall: expected a value in (0, 1], got {target}")


def _check_apply(apply: Any) -> bool:
    if not isinstance(apply, bool):
        raise TypeError(f"apply: expected a bool, got {type(apply).__name__}")
    return apply


def _check_top_p(values: Any) -> tuple[float, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"top_p: expected a list of floats in (0, 1], got {type(values).__name__}")
    for value in values:
        if value is None:
            raise TypeError("top_p: expected floats in (0, 1]; rows without top_p are always measured")
        inputs.check_top(1, value)
    return tuple(sorted({float(v) for v in values}, reverse=True))


def _check_grid(grid: Mapping[str, Sequence[int]] | None) -> dict[str, tuple[int, ...]]:
    """The grid's lists, checked; a missing key is filled in later (bits depend on the index size)."""
    if grid is None:
        return {}
    if not isinstance(grid, Mapping):
        raise TypeError(f"grid: expected a dict of lists, got {type(grid).__name__}")
    unknown = set(grid) - {"num_tables", "num_bits", "num_probes"}
    if unknown:
        raise ValueError(f"grid: unknown keys {sorted(unknown)}; expected num_tables, num_bits, num_probes")
    checked = {}
    for key, values in grid.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) == 0:
            raise ValueError(f"grid[{key!r}]: expected a non-empty list of ints, got {values!r}")
        checked[key] = tuple(sorted({inputs.positive(f"grid[{key!r}]", v) for v in values}))
    if any(not MIN_BITS <= b <= MAX_BITS for b in checked.get("num_bits", ())):
        raise ValueError(f"grid['num_bits']: expected values in {MIN_BITS}..{MAX_BITS}, got {checked['num_bits']}")
    return checked


def default_bits(index_size: int) -> tuple[int, ...]:
    """Three bit counts around log2(index size) - BITS_BELOW_LOG2 (see there)."""
    centre = round(math.log2(max(index_size, 2))) - BITS_BELOW_LOG2
    values = (centre - BITS_STEP, centre, centre + BITS_STEP)
    return tuple(sorted({min(max(b, MIN_BITS), MAX_BITS) for b in values}))


def expand_grid(wanted: Mapping[str, tuple[int, ...]], index_size: int) -> list[tuple[int, int, tuple[int, ...]]]:
    """(tables, bits, probes to sweep) for every (tables, bits) pair, in ascending order."""
    tables = wanted.get("num_tables", DEFAULT_TABLES)
    bits = wanted.get("num_bits") or default_bits(index_size)
    probes = wanted.get("num_probes", DEFAULT_PROBES)
    return [(t, b, probes) for t in tables for b in bits]


# -- measuring --------------------------------------------------------------------


def measure(
    lsh: LSHRS,
    bench: Bench,
    settings: list[tuple[int, int, tuple[int, ...]]],
    target: float,
    shares: tuple[float, ...] = (),
) -> list[TuneRow]:
    """Build every (tables, bits) as a scratch index, sweep its probes, time all settings together; one row each.

    All scratch indexes live at once (a few MB for the default sample) so
    the single queries of every setting can be timed in interleaved rounds:
    a load spike on a shared machine then slows every setting alike
    instead of deciding the pick. The fastest settings that meet `target`
    then get a row per top_p share, timed the same way.
    """
    store = MemoryStore()
    store.put(np.arange(len(bench.sample.corpus), dtype=np.int64), bench.sample.corpus)
    with contextlib.ExitStack() as cleanup:
        runs = []
        for tables, bits, probes in settings_bar(settings, lsh):
            scratch = cleanup.enter_context(scratch_index(lsh, store, tables, bits))
            memory = redis_bytes(scratch)
            runs += [(scratch, num_probes, memory) for num_probes in probes]
        p50s = latencies_ms([(scratch, num_probes, None) for scratch, num_probes, _ in runs], bench)
        rows = [measure_probes(*run, p50, bench) for run, p50 in zip(runs, p50s)]
        return rows + measure_top_p(runs, rows, bench, target, shares)


def measure_top_p(
    runs: list[tuple[LSHRS, int, float | None]],
    rows: list[TuneRow],
    bench: Bench,
    target: float,
    shares: tuple[float, ...],
) -> list[TuneRow]:
    """Rows with top_p for the TOP_P_SETTINGS fastest full-rerank rows that meet the target.

    Recall comes from the same candidates ranked by sign sketch and cut to
    each share, as a query with a warm sketch cache does; latency from
    real top_p queries on the scratch index after `LSHRS.warm()`. Each
    setting's candidates are read and ranked once, for all its shares.
    """
    passing = sorted((i for i, r in enumerate(rows) if r.recall >= target), key=lambda i: rows[i].est_p50_ms)
    picked = [(i, share) for i in passing[:TOP_P_SETTINGS] for share in shares]
    if not picked:
        return []
    for scratch in {id(runs[i][0]): runs[i][0] for i, _ in picked}.values():
        scratch.warm()
    p50s = latencies_ms([(runs[i][0], runs[i][1], share) for i, share in picked], bench)
    ranked = by_sketch(bench.sample, [runs[i][:2] for i in passing[:TOP_P_SETTINGS]])
    return [sketch_row(rows[i], *ranked[runs[i][:2]], share, p50, bench) for (i, share), p50 in zip(picked, p50s)]


def by_sketch(sample: Sample, settings: list[tuple[LSHRS, int]]) -> dict[Any, tuple[ranking.Pairs, ranking.Pairs]]:
    """For each (scratch index, probes): its candidates, and the same ranked by sign-sketch similarity."""
    sketches = SketchCache(sample.corpus.shape[1], capacity=0)
    queries, corpus = sketches.sketch(sample.queries), sketches.sketch(sample.corpus)
    ranked = {}
    for scratch, num_probes in settings:
        found = probed(scratch, sample.queries, num_probes)
        similarity = sketches.similarity(queries[found.query], corpus[found.ids])
        ranked[(scratch, num_probes)] = (found, ranking.rank(ranking.Pairs(found.query, found.ids, similarity)))
    return ranked


def sketch_row(
    full: TuneRow, found: ranking.Pairs, ranked: ranking.Pairs, share: float, p50: float, bench: Bench
) -> TuneRow:
    """`full` with only `share` of each query's candidates reranked, the best by sketch."""
    limits = ranking.top_p_limits(found, len(bench.sample.queries), bench.top_k, share)
    est = max(math.ceil(share * full.est_candidates), bench.top_k)
    return replace(
        full,
        top_p=share,
        recall=recall_at_k(ranking.head(ranked, limits), bench.sample.truth, len(bench.sample.corpus)),
        p50_ms=p50,
        est_reranked=float(est),
        est_p50_ms=p50 + max(est - float(limits.mean()), 0.0) * bench.cost_ms,
    )


@contextlib.contextmanager
def scratch_index(lsh: LSHRS, store: MemoryStore, tables: int, bits: int) -> Iterator[LSHRS]:
    """A temporary index of the sample on the user's Redis, deleted on exit (errors and Ctrl-C included).

    The planes come from the user's seed, so applying a setting gives the
    index the very hyperplanes that were measured. ``exact_below=0``: a
    scratch index is small, and below the threshold it would scan instead of probing.
    """
    from lshrs.index import LSHRS

    name = f"{SCRATCH_PREFIX}{uuid.uuid4().hex[:16]}"
    try:
        scratch = LSHRS(
            name=name,
            redis=lsh.redis,
            store=store,
            dim=int(store.dim() or 0),
            num_tables=tables,
            num_bits=bits,
            seed=lsh.attachment.seed,
            id_bytes=lsh.id_bytes,
            batch_size=lsh.batch_size,
            exact_below=0,
        )
        scratch.index()
        yield scratch
    finally:
        interrupts = steps.Interrupts()  # a second Ctrl-C waits until the scratch keys are gone
        interrupts.hold()
        try:
            Buckets(lsh.redis, name).clear()
        finally:
            interrupts.release()


def measure_probes(scratch: LSHRS, num_probes: int, memory: float | None, p50: float, bench: Bench) -> TuneRow:
    """Recall and candidates over every held-out query at one probe count; the row with its p50."""
    sample = bench.sample
    found = probed(scratch, sample.queries, num_probes)
    recall = recall_at_k(found, sample.truth, len(sample.corpus))
    uniform = found.take(sample.in_sample[found.ids])
    per_query = float(uniform.per_query(len(sample.queries)).mean())
    fraction = per_query / sample.sampled
    est = fraction * bench.index_size
    return TuneRow(
        num_tables=scratch.params["num_tables"],
        num_bits=scratch.params["num_bits"],
        num_probes=num_probes,
        recall=recall,
        candidates=per_query,
        candidates_fraction=fraction,
        est_candidates=est,
        p50_ms=p50,
        est_p50_ms=p50 + max(est - per_query, 0.0) * bench.cost_ms,
        bytes_per_vector=None if memory is None else memory / len(sample.corpus),
        est_reranked=est,
    )


def probed(scratch: LSHRS, queries: NDArray[np.float32], num_probes: int) -> ranking.Pairs:
    """The distinct candidate ids of every query (the probes' buckets), in chunks of QUERY_CHUNK queries."""
    parts = []
    for lo in range(0, len(queries), QUERY_CHUNK):
        found = search.probe(scratch.attachment, queries[lo : lo + QUERY_CHUNK], num_probes)
        parts.append(ranking.Pairs(found.query + lo, found.ids, found.value))
    return ranking.Pairs.concat(*parts)


def recall_at_k(found: ranking.Pairs, truth: NDArray[np.int64], n: int) -> float:
    """Mean fraction of each query's true top-k among its candidates (what a full rerank returns)."""
    q, k = truth.shape
    truth_keys = (np.arange(q, dtype=np.int64)[:, None] * (n + 1) + np.where(truth < 0, n, truth)).ravel()
    hits = np.isin(found.query * (n + 1) + found.ids, truth_keys)
    return float(np.bincount(found.query[hits], minlength=q).mean() / k)


def latencies_ms(runs: Sequence[tuple[LSHRS, int, float | None]], bench: Bench) -> list[float]:
    """Median wall time of single reranking queries for each (scratch index, probes, top_p), timed round-robin.

    Round r times query r on every setting in turn (after one warm-up
    round), so slow and fast periods of the machine are shared by all.
    """

    def timed(scratch: LSHRS, num_probes: int, share: float | None) -> Callable[[NDArray[np.float32]], Any]:
        return lambda query: scratch.query(query, top_k=bench.top_k, num_probes=num_probes, top_p=share)

    return round_robin_ms(bench.sample.queries[:LATENCY_QUERIES], [timed(*run) for run in runs])


def redis_bytes(scratch: LSHRS) -> float | None:
    """Redis memory (MEMORY USAGE) of a scratch index's bucket keys; None where the command is refused."""
    try:
        return float(scratch.buckets.memory_usage())
    except redis.ResponseError:  # MEMORY disabled or refused by ACL (NoPermissionError is one)
        return None


def settings_bar(settings: list[Any], lsh: LSHRS) -> Any:
    return progress.bar(f"tuning {lsh.name}", show=lsh.show_progress, unit="index", iterable=settings)


# -- choosing and applying ----------------------------------------------------------------


def apply_setting(lsh: LSHRS, row: TuneRow, dim: int) -> None:
    """Make `row` the index's parameters, rebuilding the buckets from the store if tables or bits change.

    Probes alone are saved in the index's meta. New tables or bits swap the
    index definition and run `index()`, which drops the old buckets first;
    if that is interrupted, running `index()` (``lshrs index``) again
    finishes it. Refused, before anything changes, when the store cannot
    give back every indexed vector.
    """
    same = lsh.params and (lsh.params["num_tables"], lsh.params["num_bits"]) == (row.num_tables, row.num_bits)
    if same:
        lsh.buckets.set_meta(**{NUM_PROBES: row.num_probes})
        lsh.num_probes = row.num_probes
        meta = lsh.attachment.read_meta()
        if meta is not None and meta.build in (BuildState.REDEFINE, BuildState.FRESH, BuildState.RUNNING):
            lsh.index()  # an earlier apply or build was interrupted: finish it
        return
    check_rebuildable(lsh, dim)
    lsh.attachment.redefine(dim, row.num_tables, row.num_bits, row.num_probes)
    lsh.num_probes = row.num_probes
    lsh.index()


def check_rebuildable(lsh: LSHRS, dim: int) -> None:
    """Raise unless the store can be re-read and holds every vector the buckets index."""
    stored, indexed = lsh.store.count(), lsh.count()
    if stored < indexed:
        raise ValueError(
            f"apply: the store holds {stored:,} rows but the index {indexed:,}; rebuilding the buckets from the "
            "store would lose vectors, so nothing was changed"
        )
    first = Pages(lsh.store).page(None, 1, payload=False)  # raises here, before any change, if the store is unreadable
    if first is not None and first.vectors.shape[1] != dim:
        raise ValueError(f"apply: the store holds {first.vectors.shape[1]}-d vectors, the sample {dim}-d")
