"""`LSHRS.tune` on a centroid index: measure (probes, rerank depth) on the index itself and pick.

Why it differs from the hyperplane tuner (tune.py):

- Nothing is rebuilt. Probes and rerank depth are query-time settings of the
  trained index, so they are measured on the user's own buckets and store:
  no scratch index, no scaling of a sample's candidate share to the full
  size, no estimated latency. What the table shows is what a query does.
- The queries are `num_queries` stored rows drawn uniformly (or the given
  vectors). A stored row is in the index, so its own id is left out of the
  truth and of the results; its neighbours sit around it as a new query's
  would, because the centroids were trained on a sample of the same rows.
- Recall at each (probes, depth) comes from one bucket read per probe count:
  the code-ranked candidates are cut to each depth, and the exact rerank of
  that cut finds exactly the true neighbours it contains, so the recall of
  the cut is the recall of the query. Latency is that of real single
  queries, timed round-robin over all settings.
- `apply` saves the chosen probes and depth in the index's meta, where every
  process reads them on attach (`num_probes` / `rerank_depth` given to
  `LSHRS()` still win). Changing nlist means retraining: see the README.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from lshrs import inputs, ranking, search, steps
from lshrs.centroids import Centroids, Untrained
from lshrs.definition import NUM_PROBES, RERANK_DEPTH
from lshrs.sampling import Source, reservoir
from lshrs.stores.base import Rows
from lshrs.tune_report import fastest_passing
from lshrs.tune_sample import round_robin_ms, store_top_k

if TYPE_CHECKING:
    from lshrs.index import LSHRS

# Rerank depths tried: the default (200) and one step either side (centroids.py
# names what each bought on the real corpus).
DEFAULT_DEPTHS = (100, 200, 400)
# Probe counts tried: powers of sqrt(2) from MIN_PROBES up to a quarter of the
# centroids (beyond that a query scores most of the index). Powers of two were too
# coarse: on 30,000 real MiniLM vectors (512 centroids) 64 probes reached recall@10
# 0.943 and 128 0.969, so a 0.95 target paid for twice the candidates it needed.
MIN_PROBES = 4
MOST_PROBED_SHARE = 4
# Single queries timed per setting (p50); recall uses every query.
LATENCY_QUERIES = 50
GRID_KEYS = ("num_probes", "rerank_depth")


@dataclass(frozen=True)
class ProbeRow:
    """One measured (probes, depth) setting of a centroid index.

    Attributes:
        candidates: mean bucket entries whose codes a query scores.
        candidates_fraction: `candidates` / the index size.
        reranked: mean vectors a query reads from the store and reranks.
        p50_ms: median single-query latency on this index and store.
    """

    nlist: int
    num_probes: int
    rerank_depth: int
    recall: float
    candidates: float
    candidates_fraction: float
    reranked: float
    p50_ms: float

    @property
    def setting(self) -> str:
        return f"num_probes={self.num_probes}, rerank_depth={self.rerank_depth}"


@dataclass(frozen=True)
class ProbeTuneResult:
    """What tuning a centroid index measured and chose; the same surface as `TuneResult`."""

    rows: tuple[ProbeRow, ...]
    chosen: ProbeRow | None
    met: bool
    target_recall: float
    top_k: int
    num_queries: int
    index_size: int
    applied: bool = False

    @property
    def best(self) -> ProbeRow:
        return self.chosen or max(self.rows, key=lambda r: (r.recall, -r.candidates))

    def summary(self) -> str:
        if self.chosen is None:
            best = self.best
            return (
                f"no setting reached recall {self.target_recall:g} (best {best.recall:.3f} at {best.setting}); "
                "try more num_probes or a deeper rerank_depth"
            )
        row = self.chosen
        verb = "applied" if self.applied else "chosen"
        return (
            f"{verb}: {row.setting} (recall@{self.top_k} {row.recall:.3f}, p50 {row.p50_ms:.2f} ms, "
            f"{row.candidates:,.0f} candidates scored and {row.reranked:,.0f} reranked per query at "
            f"{self.index_size:,} vectors)"
        )

    def table(self) -> str:
        nlist = self.rows[0].nlist if self.rows else 0
        lines = [
            f"{self.num_queries} queries; recall@{self.top_k} (target {self.target_recall:g}) against exact "
            f"neighbours among {self.index_size:,} stored vectors; {nlist:,} centroids",
            f"{'probes':>6} {'depth':>5} {'recall':>6} {'cand/query':>10} {'cand %':>7} {'reranked':>8} {'p50 ms':>7}",
        ]
        for row in self.rows:
            mark = "  <-" if row is self.chosen else ""
            lines.append(
                f"{row.num_probes:>6} {row.rerank_depth:>5} {row.recall:>6.3f} {row.candidates:>10,.1f} "
                f"{100 * row.candidates_fraction:>6.2f}% {row.reranked:>8,.0f} {row.p50_ms:>7.2f}{mark}"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.table()}\n{self.summary()}"


def tune(
    lsh: LSHRS,
    vectors: Any,
    *,
    target_recall: float,
    top_k: int,
    num_queries: int,
    grid: Mapping[str, Sequence[int]] | None,
    apply: bool,
    seed: int,
) -> ProbeTuneResult:
    """`LSHRS.tune` for a trained centroid index (see the module docstring)."""
    family = lsh.hasher
    if not isinstance(family, (Centroids, Untrained)):
        raise TypeError(f"tune_probes: index {lsh.name!r} is not a centroid index")
    if not isinstance(family, Centroids):
        raise ValueError(
            f"tune: index {lsh.name!r} is not trained yet (it answers by exact scan until it holds enough "
            "vectors); run index() on a larger store first"
        )
    wanted = check_grid(grid)
    probes = wanted.get("num_probes") or default_probe_grid(family.nlist)
    depths = wanted.get("rerank_depth") or DEFAULT_DEPTHS
    queries, own_ids = draw(lsh, vectors, num_queries, np.random.default_rng(seed))
    source = Source(lsh.store, lsh.name, lsh.dim, lsh.batch_size, lsh.show_progress)
    truth = store_top_k(source, Rows(own_ids, queries), top_k)
    index_size = int(lsh.store.count())
    rows = measure(lsh, queries, own_ids, truth, probes, depths, top_k, index_size, family.nlist)
    chosen = pick(rows, target_recall)
    met = chosen is not None
    result = ProbeTuneResult(tuple(rows), chosen, met, float(target_recall), top_k, len(queries), index_size)
    if apply and chosen is not None:
        lsh.buckets.set_meta(**{NUM_PROBES: chosen.num_probes, RERANK_DEPTH: chosen.rerank_depth})
        lsh.attachment.attach()  # re-read: this process now uses what every other one will
        result = replace(result, applied=True)
    return result


def check_grid(grid: Mapping[str, Sequence[int]] | None) -> dict[str, tuple[int, ...]]:
    if grid is None:
        return {}
    if not isinstance(grid, Mapping):
        raise TypeError(f"grid: expected a dict of lists, got {type(grid).__name__}")
    unknown = set(grid) - set(GRID_KEYS)
    if unknown:
        raise ValueError(
            f"grid: unknown keys {sorted(unknown)}; a centroid index tunes {', '.join(GRID_KEYS)} "
            "(num_tables and num_bits are hyperplane settings)"
        )
    checked = {}
    for key, values in grid.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) == 0:
            raise ValueError(f"grid[{key!r}]: expected a non-empty list of ints, got {values!r}")
        checked[key] = tuple(sorted({inputs.positive(f"grid[{key!r}]", v) for v in values}))
    return checked


def default_probe_grid(nlist: int) -> tuple[int, ...]:
    """Powers of sqrt(2) (rounded) from MIN_PROBES to nlist / MOST_PROBED_SHARE (all of a tiny index)."""
    most = max(1, nlist // MOST_PROBED_SHARE)
    steps = range(2 * int(math.log2(MIN_PROBES)), 63)
    values = sorted({p for p in (round(2 ** (i / 2)) for i in steps) if p <= most})
    return tuple(values) or (min(MIN_PROBES, nlist),)


def draw(lsh: LSHRS, vectors: Any, num_queries: int, rng: np.random.Generator) -> tuple[NDArray[Any], NDArray[Any]]:
    """The queries and their own ids in the store (-1 for given vectors, which are not stored)."""
    inputs.positive("num_queries", num_queries)
    if vectors is not None:
        given = inputs.as_vectors(vectors, dim=lsh.dim)
        picked = given[rng.permutation(len(given))[:num_queries]]
        return picked, np.full(len(picked), -1, np.int64)
    source = Source(lsh.store, lsh.name, lsh.dim, lsh.batch_size, lsh.show_progress)
    rows, _ = reservoir(source, num_queries, rng)
    return rows.vectors, rows.ids


def measure(
    lsh: LSHRS,
    queries: NDArray[np.float32],
    own_ids: NDArray[np.int64],
    truth: NDArray[np.int64],
    probes: tuple[int, ...],
    depths: tuple[int, ...],
    top_k: int,
    index_size: int,
    nlist: int,
) -> list[ProbeRow]:
    """One row per (probes, depth): recall and work from one bucket read per probe count, p50 timed round-robin."""
    rows = []
    for num_probes in probes:
        found = search.probe(lsh.attachment, queries, num_probes)
        found = found.take(found.ids != own_ids[found.query])
        per_query = found.per_query(len(queries))
        for depth in depths:
            limits = np.full(len(queries), max(depth, top_k))
            chosen = ranking.best_per_query(found, limits)
            rows.append(
                ProbeRow(
                    nlist=nlist,
                    num_probes=min(num_probes, nlist),
                    rerank_depth=depth,
                    recall=recall(chosen, truth),
                    candidates=float(per_query.mean()),
                    candidates_fraction=float(per_query.mean()) / max(index_size, 1),
                    reranked=float(np.minimum(per_query, max(depth, top_k)).mean()),
                    p50_ms=math.nan,
                )
            )
    p50s = latencies_ms(lsh, queries[:LATENCY_QUERIES], rows, top_k)
    return [replace(row, p50_ms=p50) for row, p50 in zip(rows, p50s)]


def recall(chosen: ranking.Pairs, truth: NDArray[np.int64]) -> float:
    """Mean share of each query's true top-k among what it reranks (which a full rerank then returns)."""
    k = truth.shape[1]
    hits = 0
    for q, want in enumerate(truth.tolist()):
        hits += len(set(want) & set(chosen.ids[chosen.query == q].tolist()))
    return hits / (len(truth) * k)


def latencies_ms(lsh: LSHRS, queries: NDArray[np.float32], rows: list[ProbeRow], top_k: int) -> list[float]:
    """Median wall time of single reranking queries at each row's setting, timed round-robin after one warm-up round."""
    requests = [
        search.request(
            queries[:1],
            dim=lsh.dim,
            top_k=top_k,
            top_p=None,
            rerank=True,
            probes=row.num_probes,
            filter=None,
            exact_below=lsh.exact_below,
            batch_size=lsh.batch_size,
            rerank_depth=row.rerank_depth,
        )
        for row in rows
    ]
    targets = lsh.step_targets()

    def timed(req: search.Request) -> Callable[[NDArray[np.float32]], Any]:
        return lambda query: steps.run(
            search.query_steps(lsh.attachment, replace(req, vectors=query[None, :])), targets
        )

    return round_robin_ms(queries, [timed(req) for req in requests])


def pick(rows: Sequence[ProbeRow], target: float) -> ProbeRow | None:
    """The fastest row meeting the target (p50 within LATENCY_TIE ties), then the fewest candidates and reranks."""
    return fastest_passing(
        rows, target, latency=lambda r: r.p50_ms, tiebreak=lambda r: (r.candidates, r.reranked, r.p50_ms)
    )
