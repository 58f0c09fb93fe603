"""`LSHRS.tune`: measure (tables, bits, probes) on a sample of the user's vectors, pick the fastest that meets a recall.

How it measures, and why:

- The sample is the user's own data (their vectors, or a uniform random
  sample of the store read in one scan), because recall depends on how
  their neighbours are spread, which no synthetic set reproduces.
- `num_queries` rows are held out as queries (never indexed). When the
  store holds more rows than the sample, a second scan finds each query's
  exact cosine top-k in the whole store and those rows join the scratch
  indexes: a query's neighbours among a million rows are much closer than
  among a 20,000-row sample, so they collide far more often, and recall
  measured within the sample alone would send the pick to settings that
  rerank about twice the candidates needed (measured on 36,864 MiniLM
  WordNet glosses, sample 5,000). Given vectors are their own truth, which
  errs the same, safe, way if they stand for a larger index.
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
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import redis
from numpy.typing import NDArray

from lshrs import inputs, ranking, steps
from lshrs.buckets import Buckets
from lshrs.search import Pages, candidates
from lshrs.sketch import SketchCache
from lshrs.stores.base import Rows, find_sorted
from lshrs.stores.memory import MemoryStore

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
# Settings whose latency is within this fraction of the fastest count as
# equally fast (timings on a shared machine vary by about this much); among
# them the one with fewest candidates wins.
LATENCY_TIE = 0.10
# Rows of the user's store read to price one candidate (see rerank_cost).
COST_SAMPLE = 1_000


@dataclass(frozen=True)
class TuneRow:
    """One measured setting.

    Attributes:
        recall: mean recall@top_k of the held-out queries, from the probed candidates.
        candidates: mean distinct ids a query reranks among the uniform sample's rows.
        candidates_fraction: `candidates` / the sample's rows: the figure that carries to any corpus size.
        est_candidates: `candidates_fraction` x the index size: what a query reranks at full size.
        p50_ms: median single-query latency on the scratch index (Redis + an in-memory store).
        est_p50_ms: `p50_ms` plus the extra candidates at full size, priced on the user's store.
        bytes_per_vector: Redis memory of the scratch buckets per sampled vector (None where MEMORY is refused).
        top_p: the share of candidates reranked, ranked by sketch (None: all of them).
        est_reranked: vectors a query reads from the store and reranks at full size.
    """

    num_tables: int
    num_bits: int
    num_probes: int
    recall: float
    candidates: float
    candidates_fraction: float
    est_candidates: float
    p50_ms: float
    est_p50_ms: float
    bytes_per_vector: float | None
    top_p: float | None = None
    est_reranked: float = 0.0

    @property
    def setting(self) -> str:
        probes = f"num_tables={self.num_tables}, num_bits={self.num_bits}, num_probes={self.num_probes}"
        return probes if self.top_p is None else f"{probes}, top_p={self.top_p:g}"


@dataclass(frozen=True)
class TuneResult:
    """What `LSHRS.tune` measured and chose; ``str(result)`` is a readable table and verdict.

    `chosen` is None when no setting reached `target_recall` (`met` False):
    a failing setting is never picked; `best` is then the closest one.
    """

    rows: tuple[TuneRow, ...]
    chosen: TuneRow | None
    met: bool
    target_recall: float
    top_k: int
    sample_size: int
    num_queries: int
    index_size: int
    truth_over: int
    applied: bool = False

    @property
    def best(self) -> TuneRow:
        """The chosen row, or else the one with the highest recall (fewest candidates among equals)."""
        return self.chosen or max(self.rows, key=lambda r: (r.recall, -r.candidates))

    def summary(self) -> str:
        """One line: the chosen setting and its figures, or that none reached the target."""
        if self.chosen is None:
            best = self.best
            return (
                f"no setting reached recall {self.target_recall:g} (best {best.recall:.3f} at {best.setting}); "
                "try larger num_probes or num_tables, or fewer num_bits"
            )
        row = self.chosen
        verb = "applied" if self.applied else "chosen"
        line = (
            f"{verb}: {row.setting} (recall@{self.top_k} {row.recall:.3f}, p50 {row.p50_ms:.2f} ms on the sample, "
            f"~{row.est_candidates:,.0f} candidates and ~{row.est_reranked:,.0f} reranked per query at "
            f"{self.index_size:,} vectors)"
        )
        if row.top_p is not None:
            line += f"; top_p is per query: pass top_p={row.top_p:g} to query() (LSHRS.warm() readies its sketches)"
        return line

    def table(self) -> str:
        """Every row as a fixed-width text table; the chosen row is marked."""
        header = (
            f"{'tables':>6} {'bits':>4} {'probes':>6} {'top_p':>5} {'recall':>6} {'cand/query':>10} {'cand %':>7} "
            f"{'est. cand':>10} {'est. rerank':>11} {'p50 ms':>7} {'est. p50 ms':>11} {'Redis B/vec':>11}"
        )
        lines = [
            f"{self.sample_size:,} sampled vectors, {self.num_queries} held-out queries; recall@{self.top_k} "
            f"(target {self.target_recall:g}) against exact neighbours among {self.truth_over:,} vectors; "
            f"estimates at {self.index_size:,} vectors",
            header,
        ]
        for row in self.rows:
            memory = "-" if row.bytes_per_vector is None else f"{row.bytes_per_vector:,.0f}"
            mark = "  <-" if row is self.chosen else ""
            top_p = "-" if row.top_p is None else f"{row.top_p:g}"
            lines.append(
                f"{row.num_tables:>6} {row.num_bits:>4} {row.num_probes:>6} {top_p:>5} {row.recall:>6.3f} "
                f"{row.candidates:>10,.1f} {100 * row.candidates_fraction:>6.2f}% {row.est_candidates:>10,.0f} "
                f"{row.est_reranked:>11,.0f} {row.p50_ms:>7.2f} {row.est_p50_ms:>11.2f} {memory:>11}{mark}"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.table()}\n{self.summary()}"


@dataclass(frozen=True)
class Sample:
    """Held-out queries, the rows a scratch index holds, and each query's true top-k (positions in `corpus`).

    `corpus` is the uniform sample, plus, when the store is larger than the
    sample, each query's true neighbours in the whole store (`in_sample`
    False): recall is then measured against the neighbours the full index
    holds, while candidates are counted on the uniform part only, whose
    share of the sample is the share of the index a query reranks.
    """

    queries: NDArray[np.float32]
    corpus: NDArray[np.float32]
    truth: NDArray[np.int64]  # (queries, top_k); -1 for a neighbour deleted from the store meanwhile
    in_sample: NDArray[np.bool_]
    cost_ids: NDArray[np.int64]  # ids of stored rows to price a candidate read with (may be empty)
    truth_over: int  # rows the exact top-k was taken over

    @property
    def sampled(self) -> int:
        return int(self.in_sample.sum())


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
) -> TuneResult:
    """`LSHRS.tune` (see there): check everything, sample, measure every setting, pick, optionally apply."""
    _check_target(target_recall)
    shares = _check_top_p(top_p)
    inputs.check_top(top_k, None)
    _positive_int("sample_size", sample_size)
    _positive_int("num_queries", num_queries)
    if not isinstance(apply, bool):
        raise TypeError(f"apply: expected a bool, got {type(apply).__name__}")
    wanted = _check_grid(grid)
    rng = np.random.default_rng(seed)
    sample, index_size = draw(lsh, vectors, sample_size, num_queries, top_k, rng)
    cost = rerank_cost(lsh, sample.cost_ids) if index_size > sample.sampled else 0.0
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


def _check_top_p(values: Any) -> tuple[float, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"top_p: expected a list of floats in (0, 1], got {type(values).__name__}")
    for value in values:
        if value is None:
            raise TypeError("top_p: expected floats in (0, 1]; rows without top_p are always measured")
        inputs.check_top(1, value)
    return tuple(sorted({float(v) for v in values}, reverse=True))


def _positive_int(name: str, value: Any) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name}: expected >= 1, got {value}")
    return int(value)


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
        checked[key] = tuple(sorted({_positive_int(f"grid[{key!r}]", v) for v in values}))
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


# -- the sample -----------------------------------------------------------------


def draw(
    lsh: LSHRS, vectors: Any, size: int, num_queries: int, top_k: int, rng: np.random.Generator
) -> tuple[Sample, int]:
    """The sample and the size of the index it stands for.

    From the store: one scan draws the sample; when the store holds more
    rows than that, a second scan finds each held-out query's true
    neighbours among all of them (see `Sample`). Given vectors: the truth
    is taken within them, which is conservative if they stand for more.
    """
    if vectors is not None:
        given = inputs.as_vectors(vectors, dim=lsh.dim)
        picked = given[rng.permutation(len(given))[:size]]
        _check_size(len(picked), num_queries, top_k)
        asked, corpus = picked[:num_queries], picked[num_queries:]
        truth = exact_top_k(asked, corpus, top_k)
        sample = Sample(asked, corpus, truth, np.ones(len(corpus), bool), _stored_ids(lsh), len(corpus))
        return sample, max(lsh.store.count(), len(corpus))
    rows, seen = reservoir(lsh, size, rng)
    _check_size(len(rows), num_queries, top_k)
    queries = Rows(rows.ids[:num_queries], rows.vectors[:num_queries])
    rest = Rows(rows.ids[num_queries:], rows.vectors[num_queries:])
    if seen == len(rows):  # the sample is the whole store: its truth is the index's
        truth = exact_top_k(queries.vectors, rest.vectors, top_k)
        everything = np.ones(len(rest), bool)
        return Sample(queries.vectors, rest.vectors, truth, everything, rest.ids[:COST_SAMPLE], len(rest)), seen
    return planted(lsh, queries, rest, store_top_k(lsh, queries, top_k), seen), seen


def _check_size(n: int, num_queries: int, top_k: int) -> None:
    if n < num_queries + top_k:
        raise ValueError(
            f"sample: {n} vectors, too few for num_queries={num_queries} held out plus top_k={top_k}; "
            "lower num_queries or give more vectors"
        )


def reservoir(lsh: LSHRS, size: int, rng: np.random.Generator) -> tuple[Rows, int]:
    """A uniform random sample of up to `size` stored rows, in random order, from one scan; and the rows scanned.

    Every row gets a random key and the `size` smallest keys are kept
    (bottom-k sampling), pruned batch by batch, so memory stays at the
    sample plus one batch and the store is read once.
    """
    ids, vectors, keys = np.empty(0, np.int64), None, np.empty(0)
    seen = 0
    for rows in scan(lsh, "sampling"):
        seen += len(rows)
        ids = np.concatenate([ids, rows.ids])
        vectors = rows.vectors if vectors is None else np.concatenate([vectors, rows.vectors])
        keys = np.concatenate([keys, rng.random(len(rows))])
        if len(keys) > size:
            keep = np.argpartition(keys, size - 1)[:size]
            ids, vectors, keys = ids[keep], vectors[keep], keys[keep]
    if vectors is None:
        raise ValueError(f"index {lsh.name!r}: the store is empty; pass vectors= to tune on")
    order = np.argsort(keys)
    return Rows(ids[order], vectors[order]), seen


def store_top_k(lsh: LSHRS, queries: Rows, k: int) -> NDArray[np.int64]:
    """Ids of each query's k nearest stored rows by cosine (itself left out), from one scan of the store."""
    unit = ranking.normalize(queries.vectors)
    best_ids = np.empty((len(unit), 0), np.int64)
    best = np.empty((len(unit), 0), np.float32)
    for rows in scan(lsh, "exact neighbours"):
        scores = unit @ ranking.normalize(rows.vectors).T
        scores[queries.ids[:, None] == rows.ids[None, :]] = -np.inf
        best_ids = np.concatenate([best_ids, np.broadcast_to(rows.ids, scores.shape)], axis=1)
        best = np.concatenate([best, scores], axis=1)
        if best.shape[1] > k:
            top = np.argpartition(-best, k - 1, axis=1)[:, :k]
            best_ids, best = np.take_along_axis(best_ids, top, 1), np.take_along_axis(best, top, 1)
    return best_ids


def planted(lsh: LSHRS, queries: Rows, rest: Rows, truth_ids: NDArray[np.int64], truth_over: int) -> Sample:
    """The sample plus the queries' true neighbours it lacks, read from the store by id."""
    extra = lsh.store.get(np.setdiff1d(truth_ids, rest.ids), payload=False)
    ids = np.concatenate([rest.ids, extra.ids])
    order = np.argsort(ids)
    pos = find_sorted(ids[order], truth_ids.ravel())
    truth = np.where(pos >= 0, order[np.maximum(pos, 0)], -1).reshape(truth_ids.shape)
    in_sample = np.r_[np.ones(len(rest), bool), np.zeros(len(extra), bool)]
    corpus = np.concatenate([rest.vectors, extra.vectors])
    return Sample(queries.vectors, corpus, truth, in_sample, rest.ids[:COST_SAMPLE], truth_over)


def scan(lsh: LSHRS, what: str) -> Iterator[Rows]:
    """The store's rows (ids and vectors), checked, with a progress bar when the index shows one."""
    from tqdm.auto import tqdm

    with tqdm(total=lsh.store.count() if lsh.show_progress else None, desc=f"tuning {lsh.name}: {what}",
              unit="rows", disable=not lsh.show_progress) as bar:  # fmt: skip
        for rows in Pages(lsh.store).scan(lsh.batch_size, payload=False):
            bar.update(len(rows))
            yield Rows(rows.ids, inputs.as_vectors(rows.vectors, dim=lsh.dim, name="stored vectors"))


def _stored_ids(lsh: LSHRS) -> NDArray[np.int64]:
    """Ids of the store's first rows (to price a candidate read), none for an empty store."""
    page = Pages(lsh.store).page(None, COST_SAMPLE, payload=False)
    return np.empty(0, np.int64) if page is None else page.ids


def exact_top_k(queries: NDArray[np.float32], corpus: NDArray[np.float32], k: int) -> NDArray[np.int64]:
    """Positions in `corpus` of each query's k nearest by cosine, best first."""
    scores = ranking.normalize(queries) @ ranking.normalize(corpus).T
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1).astype(np.int64)


def rerank_cost(lsh: LSHRS, ids: NDArray[np.int64]) -> float:
    """Milliseconds per candidate to read from the user's store (payload-free, as a query does); best of three.

    This is the part of a query that grows with the index, so it prices the
    candidates a full-size index adds to what the sample measured.
    """
    if len(ids) == 0:
        return 0.0
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        lsh.store.get(ids, payload=False)
        best = min(best, time.perf_counter() - start)
    return 1e3 * best / len(ids)


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
        for tables, bits, probes in progress(settings, lsh):
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
    from lshrs.index import DEFAULT_SEED, LSHRS

    name = f"{SCRATCH_PREFIX}{uuid.uuid4().hex[:16]}"
    try:
        scratch = LSHRS(
            name=name,
            redis=lsh.redis,
            store=store,
            dim=int(store.dim() or 0),
            num_tables=tables,
            num_bits=bits,
            seed=lsh.params.get("seed", lsh._requested.get("seed", DEFAULT_SEED)),
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
        found, _, _ = steps.run(candidates(scratch, queries[lo : lo + QUERY_CHUNK], num_probes), scratch._targets())
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
    queries = bench.sample.queries[:LATENCY_QUERIES]
    times = np.zeros((len(queries) + 1, len(runs)))
    for r, query in enumerate(np.concatenate([queries[:1], queries])):
        for i, (scratch, num_probes, share) in enumerate(runs):
            start = time.perf_counter()
            scratch.query(query, top_k=bench.top_k, num_probes=num_probes, top_p=share)
            times[r, i] = time.perf_counter() - start
    return (np.median(times[1:], axis=0) * 1e3).tolist()


def redis_bytes(scratch: LSHRS) -> float | None:
    """Redis memory (MEMORY USAGE) of a scratch index's bucket keys; None where the command is refused."""
    client = scratch.redis
    keys = list(client.scan_iter(match=scratch.buckets.prefix + b"b:*", count=1000))
    try:
        total = 0
        for lo in range(0, len(keys), 1000):
            pipe = client.pipeline(transaction=False)
            for key in keys[lo : lo + 1000]:
                pipe.memory_usage(key, samples=0)
            total += sum(int(v or 0) for v in pipe.execute())
    except redis.ResponseError:  # MEMORY disabled or refused by ACL (NoPermissionError is one)
        return None
    return float(total)


def progress(settings: list[Any], lsh: LSHRS) -> Any:
    from tqdm.auto import tqdm

    return tqdm(settings, desc=f"tuning {lsh.name}", unit="index", disable=not lsh.show_progress)


# -- choosing and applying ----------------------------------------------------------------


def pick(rows: Sequence[TuneRow], target: float) -> TuneRow | None:
    """The fastest row that meets the target (est. p50 within LATENCY_TIE counts as a tie), None if none does.

    Ties go to fewer candidates (the cost that grows with the index and
    does not depend on the machine), then to less Redis memory.
    """
    passing = [r for r in rows if r.recall >= target]
    if not passing:
        return None
    fastest = min(r.est_p50_ms for r in passing)
    tied = [r for r in passing if r.est_p50_ms <= fastest * (1 + LATENCY_TIE)]
    return min(tied, key=lambda r: (r.candidates_fraction, r.bytes_per_vector or math.inf, r.est_p50_ms))


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
        lsh.buckets.set_meta(num_probes=row.num_probes)
        lsh.num_probes = row.num_probes
        if lsh.buckets.read_meta().get("build") in (b"redefine", b"fresh", b"running"):
            lsh.index()  # an earlier apply or build was interrupted: finish it
        return
    check_rebuildable(lsh, dim)
    lsh._redefine(dim, row.num_tables, row.num_bits, row.num_probes)
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
