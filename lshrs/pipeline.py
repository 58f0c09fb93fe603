"""Wikipedia into an index: articles -> passages -> embeddings -> store + buckets, resumable.

The three stages overlap (lshrs.overlap): a thread reads and splits the
next batches (a dump's markup stripped by `workers` processes) while this
one embeds, and a writer thread stores the previous batch.

The job's position (articles done, passages written) is kept in Redis next to
the index, under a key derived from the input and the chunking settings. It
advances only after a batch is in both the store and the buckets, and a
batch always ends on an article boundary, so a re-run after an interruption
skips exactly the finished articles; passage ids are stable, so a batch
written twice is upserted, never duplicated. A finished job re-run does
nothing.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from lshrs import progress
from lshrs.index import LSHRS
from lshrs.overlap import WriteBehind, read_ahead
from lshrs.passages import DEFAULT_OVERLAP, DEFAULT_WORDS, UNITS, Passage, check_window, units
from lshrs.wikipedia import Article, read_articles, shard_files

DEFAULT_BATCH_PASSAGES = 256


@dataclass
class JobState:
    articles: int = 0
    passages: int = 0
    finished: bool = False
    seconds: dict[str, float] = field(default_factory=lambda: {"parse": 0.0, "embed": 0.0, "write": 0.0})


class WikipediaJob:
    """One input into one index.

    Args:
        lsh: the target index (Wikipedia passage ids need ``id_bytes=8``).
        source: dump / parquet / JSONL path, or rows (a `datasets` object).
        words, overlap: passage window, in words (an article unit: its lead, cut at `words`).
        unit: "passage" (overlapping windows of every article) or "article"
            (one vector per article, its lead section; ids are page ids).
        batch_passages: passages per embed-and-write batch (rounded up to whole articles).
        limit: stop after this many articles (demos, tests).
        workers: processes stripping a dump's markup (default: the cores this process may use).
    """

    def __init__(
        self,
        lsh: LSHRS,
        source: str | Path | Iterable[Mapping[str, Any]],
        *,
        words: int = DEFAULT_WORDS,
        overlap: int = DEFAULT_OVERLAP,
        batch_passages: int = DEFAULT_BATCH_PASSAGES,
        limit: int | None = None,
        show_progress: bool = False,
        workers: int | None = None,
        unit: str = "passage",
    ) -> None:
        check_window(words, overlap)
        if unit not in UNITS:
            raise ValueError(f"unit: expected one of {', '.join(UNITS)}, got {unit!r}")
        self.unit = unit
        self.workers = available_cores() if workers is None else max(1, int(workers))
        self.lsh = lsh
        self.source = source
        self.words = words
        self.overlap = overlap
        self.batch_passages = batch_passages
        self.limit = limit
        self.show_progress = show_progress
        self._exhausted = False
        self.job = hashlib.sha1(_fingerprint(source, words, overlap, unit).encode()).hexdigest()[:16]

    def state(self) -> JobState:
        raw = self.lsh.buckets.job_state(self.job)
        return JobState(int(raw.get("articles", 0)), int(raw.get("passages", 0)), raw.get("finished") == "1")

    def run(self) -> JobState:
        """Index what is left of the input; returns the totals (with this run's stage timings)."""
        state = self.state()
        if state.finished:
            return state
        articles = read_articles(self.source, skip=state.articles, workers=self.workers)
        art_bar = progress.bar("articles", show=self.show_progress, unit=" art", initial=state.articles)
        psg_bar = progress.bar("passages", show=self.show_progress, unit=" psg", initial=state.passages)
        started = time.perf_counter()
        try:
            with art_bar, psg_bar, WriteBehind(depth=2) as writer:
                for batch_articles, batch in read_ahead(self._batches(articles, state), depth=2):
                    vectors = self._embed(batch, state)
                    writer.submit(partial(self._write, batch_articles, batch, vectors, state, (art_bar, psg_bar)))
        finally:
            getattr(articles, "close", lambda: None)()  # a dump's worker processes stop now, not at collection
        state.seconds["total"] = time.perf_counter() - started
        if self._exhausted:  # a run cut short by `limit` can be continued by a later one
            state.finished = True
            self.lsh.buckets.save_job_state(self.job, finished=1)
        return state

    def _batches(self, articles: Iterator[Article], state: JobState) -> Iterator[tuple[int, list[Passage]]]:
        """(articles consumed, their passages), cut at article boundaries."""
        remaining = None if self.limit is None else max(self.limit - state.articles, 0)
        self._exhausted = False
        batch: list[Passage] = []
        count = 0
        started = time.perf_counter()
        taken = 0
        for article in articles:
            if remaining is not None and taken >= remaining:
                break
            batch += units(article, unit=self.unit, words=self.words, overlap=self.overlap)
            count += 1
            taken += 1
            if len(batch) >= self.batch_passages:
                state.seconds["parse"] += time.perf_counter() - started
                yield count, batch
                batch, count = [], 0
                started = time.perf_counter()
        else:
            self._exhausted = True
        state.seconds["parse"] += time.perf_counter() - started
        if count:
            yield count, batch

    def _embed(self, batch: list[Passage], state: JobState) -> Any:
        started = time.perf_counter()
        vectors = self.lsh.embed([p.embedding_text for p in batch]) if batch else None
        state.seconds["embed"] += time.perf_counter() - started
        return vectors

    def _write(self, articles: int, batch: list[Passage], vectors: Any, state: JobState, bars: tuple) -> None:
        """Store and hash one batch, then advance the checkpoint past its articles (the writer thread)."""
        started = time.perf_counter()
        if batch:
            self.lsh.ingest(
                vectors=vectors,
                texts=[p.text for p in batch],
                ids=[p.id for p in batch],
                metadata=[p.metadata for p in batch],
            )
            self.lsh.remember_model()  # the passages' vectors came from the index's model: keep its name
        state.articles += articles
        state.passages += len(batch)
        self.lsh.buckets.save_job_state(self.job, articles=state.articles, passages=state.passages)
        state.seconds["write"] += time.perf_counter() - started
        bars[0].update(articles)
        bars[1].update(len(batch))


def available_cores() -> int:
    """Cores this process may run on (its affinity, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def _fingerprint(source: Any, words: int, overlap: int, unit: str = "passage") -> str:
    """Identity of a job: the input (path, size and mtime; or a dataset's fingerprint) and the chunking.

    A directory of shards is known by each shard's name, size and mtime. A
    passage job's identity is what it was before article units existed, so
    jobs started then still resume.
    """
    if isinstance(source, (str, Path)):
        path = Path(source).resolve()
        files = shard_files(path) if path.is_dir() else [path]
        what = "|".join(_file_identity(f) for f in files)
    else:
        what = str(getattr(source, "_fingerprint", None) or getattr(source, "fingerprint", None) or type(source))
    return f"{what}|{words}|{overlap}" + ("" if unit == "passage" else f"|{unit}")


def _file_identity(path: Path) -> str:
    stat = path.stat() if path.exists() else None
    return f"{path}|{stat.st_size if stat else 0}|{stat.st_mtime_ns if stat else 0}"
