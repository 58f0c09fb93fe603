"""What the tuner measured and chose: the rows, the verdict, and the rule that picks.

Pure data and formatting; the measuring is in tune.py and the sample in tune_sample.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol, TypeVar

# Settings whose latency is within this fraction of the fastest count as
# equally fast (timings on a shared machine vary by about this much); among
# them the one with fewest candidates wins.
LATENCY_TIE = 0.10


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


def pick(rows: Sequence[TuneRow], target: float) -> TuneRow | None:
    """The fastest row that meets the target (est. p50 within LATENCY_TIE counts as a tie), None if none does.

    Ties go to fewer candidates (the cost that grows with the index and
    does not depend on the machine), then to less Redis memory.
    """
    return fastest_passing(
        rows,
        target,
        latency=lambda r: r.est_p50_ms,
        tiebreak=lambda r: (r.candidates_fraction, r.bytes_per_vector or math.inf, r.est_p50_ms),
    )


class _Measured(Protocol):
    @property
    def recall(self) -> float: ...


Row = TypeVar("Row", bound=_Measured)


def fastest_passing(
    rows: Sequence[Row], target: float, *, latency: Callable[[Row], float], tiebreak: Callable[[Row], Any]
) -> Row | None:
    """The pick rule of both tuners: among rows reaching `target` recall, those within LATENCY_TIE of the
    fastest count as tied, and `tiebreak` orders them; None when no row reaches the target."""
    passing = [r for r in rows if r.recall >= target]
    if not passing:
        return None
    fastest = min(latency(r) for r in passing)
    tied = [r for r in passing if latency(r) <= fastest * (1 + LATENCY_TIE)]
    return min(tied, key=tiebreak)
