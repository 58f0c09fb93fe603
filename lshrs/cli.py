"""The ``lshrs`` command: build, search and manage an index from a terminal.

Every command reaches the index the same way (``--redis-url``,
``--postgres-dsn`` or ``--sqlite``, ``--name``), each with an environment
variable, so a script can set them once. Failures print one line on stderr
and exit with a code a script can test:

    0  success
    1  bad input: a missing or unreadable file, an invalid argument value
    2  bad usage: unknown command or option (click's own code)
    3  a server (Redis or Postgres) could not be reached
    130  interrupted (Ctrl-C); re-running an ingest resumes where it stopped
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

import click
import numpy as np
import redis

from lshrs import connection, inputs, tune_probes
from lshrs import tune as tuning
from lshrs.buckets import Buckets, index_names
from lshrs.cli_options import Target, embedding_options, int_list, share_list, target_options
from lshrs.index import LSHRS, Hit

EPILOG = """\b
Exit codes:
  0    success
  1    bad input: a missing or unreadable file, an invalid argument value
  2    bad usage: unknown command or option
  3    a server (Redis or Postgres) could not be reached
  130  interrupted (Ctrl-C); re-running an ingest resumes where it stopped
"""
EXIT_INPUT = 1
EXIT_UNREACHABLE = 3
EXIT_INTERRUPTED = 130

DEMO_NAME = "wikipedia-demo"
DEMO_SLICE = "test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
DEMO_QUESTIONS = (
    "What fraction of sunlight does a surface reflect?",
    "a political philosophy that rejects the state and hierarchy",
    "Who were the first people to walk on the Moon?",
    "Which Greek philosopher taught Alexander the Great?",
    "Who developed the theory of relativity?",
    "an African mammal that digs burrows and eats termites",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}, epilog=EPILOG)
@click.version_option(package_name="lshrs")
def cli() -> None:
    """Semantic search without a vector database: LSH buckets in Redis, documents in SQLite or Postgres.

    Start with `lshrs demo`: it indexes a slice of English Wikipedia on a local
    embedded Redis and SQLite (nothing to set up) and answers a few questions.
    """


# -- demo ----------------------------------------------------------------------


@cli.command()
@target_options(default_name=DEMO_NAME)
@click.option("--limit", type=click.IntRange(min=1), help="Index only the first LIMIT articles.")
@click.option("--top-k", type=click.IntRange(min=1), default=3, show_default=True, help="Hits per question.")
@click.option("--question", "-q", "questions", multiple=True, help="Ask this instead of the sample questions.")
def demo(target: Target, limit: int | None, top_k: int, questions: tuple[str, ...]) -> None:
    """Index the Wikipedia slice in gensim's wheel and answer sample questions.

    The first run parses, embeds and indexes about 4,000 passages (a few
    minutes on a laptop CPU); later runs reuse the index and only search.
    """
    dump = demo_dump()
    with target.open(id_bytes=8, show_progress=True) as lsh:
        state = _run_job(lsh, dump, limit=limit, show_progress=True)
        click.echo(f"index {lsh.name!r}: {state.passages:,} passages of {state.articles} articles, "
                   f"{lsh.count():,} vectors in the buckets\n")  # fmt: skip
        for question in questions or DEMO_QUESTIONS:
            click.echo(click.style(f"? {question}", bold=True))
            for hit in lsh.query(question, top_k=top_k):
                click.echo(_format_hit(hit))
            click.echo()


def demo_dump() -> Path:
    """The shortened English Wikipedia dump that gensim's wheel ships (found without importing gensim)."""
    spec = importlib.util.find_spec("gensim")
    if spec is None or spec.origin is None:
        raise click.ClickException("the demo reads the Wikipedia slice shipped with gensim: pip install gensim")
    path = Path(spec.origin).parent / DEMO_SLICE
    if not path.is_file():
        raise click.ClickException(f"{path}: not found in the installed gensim")
    return path


# -- ingest / index ---------------------------------------------------------------


@cli.group()
def ingest() -> None:
    """Add documents to an index."""


@ingest.command("wikipedia")
@target_options()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--words", type=click.IntRange(min=1), default=120, show_default=True, help="Passage size in words.")
@click.option("--overlap", type=click.IntRange(min=0), default=20, show_default=True,
              help="Words shared by consecutive passages.")  # fmt: skip
@click.option("--limit", type=click.IntRange(min=1), help="Stop after LIMIT articles (a later run continues).")
@click.option("--batch", "batch_passages", type=click.IntRange(min=1), default=256, show_default=True,
              help="Passages per embed-and-write batch.")  # fmt: skip
@click.option("--embedding-model", help="sentence-transformers model name or path (default all-MiniLM-L6-v2).")
@click.option(
    "--unit",
    type=click.Choice(["passage", "article"]),
    default="passage",
    show_default=True,
    help="passage: windows of every article; article: one vector per article (its lead, page id as id).",
)
@embedding_options
@click.option("--workers", type=click.IntRange(min=1), help="Processes stripping a dump's markup [default: the cores].")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show progress bars on stderr.")
def ingest_wikipedia(target: Target, path: Path, words: int, overlap: int, limit: int | None,
                     batch_passages: int, embedding_model: str | None, device: str | None,
                     unit: str, embedding_backend: str, workers: int | None, progress: bool) -> None:  # fmt: skip
    """Index a Wikipedia dump (*-pages-articles*.xml[.bz2]) or wikimedia/wikipedia rows (parquet, JSONL, shards).

    Articles are split into passages of --words words, embedded, written to
    the store and hashed into the buckets. The job is resumable: interrupt it
    and run the same command again to continue; a finished job does nothing.
    """
    model = {"embedding_model": embedding_model, "embedding_device": device, "embedding_backend": embedding_backend}
    with target.open(id_bytes=8, **model) as lsh:
        state = _run_job(lsh, path, words=words, overlap=overlap, limit=limit,
                         batch_passages=batch_passages, show_progress=progress, workers=workers, unit=unit)  # fmt: skip
        status = "finished" if state.finished else "stopped at --limit; run again to continue"
        click.echo(f"{state.articles:,} articles, {state.passages:,} passages in {lsh.name!r} ({status})")


@cli.command()
@target_options()
@click.option("--rebuild", is_flag=True, help="Drop the buckets and index every row again.")
def index(target: Target, rebuild: bool) -> None:
    """Build the buckets for rows already in the store (resumable; later runs add only new rows)."""
    with target.open(show_progress=True) as lsh:
        done = lsh.index(rebuild=rebuild)
        click.echo(f"indexed {done:,} rows; {lsh.count():,} in {lsh.name!r}")


def _run_job(lsh: LSHRS, source: Path, **options: Any) -> Any:
    from lshrs.pipeline import WikipediaJob

    return WikipediaJob(lsh, source, **options).run()


# -- query / stats / delete / clear -------------------------------------------------


@cli.command()
@target_options()
@click.argument("texts", metavar="TEXT...", nargs=-1, required=True)
@click.option("--top-k", "-k", type=click.IntRange(min=1), default=10, show_default=True, help="Hits to return.")
@click.option("--top-p", type=click.FloatRange(0, 1, min_open=True),
              help="Fraction of LSH candidates reranked by exact cosine (default: all).")  # fmt: skip
@click.option("--no-rerank", is_flag=True, help="Rank by collision count only; never reads the store.")
@click.option("--probes", type=click.IntRange(min=1), help="Buckets probed per table.")
@click.option(
    "--model",
    "embedding_model",
    help="Embedding model name or path (default: the one saved with the index at its first ingest).",
)
@click.option(
    "--alpha",
    type=click.FloatRange(0, 1),
    help="Hybrid search: weight of the vector search against the store's keyword search (0: keywords).",
)
@embedding_options
@click.option("--json", "as_json", is_flag=True, help="One JSON array of hits on stdout.")
def query(target: Target, texts: tuple[str, ...], top_k: int, top_p: float | None, no_rerank: bool,
          probes: int | None, embedding_model: str | None, alpha: float | None, device: str | None,
          embedding_backend: str, as_json: bool) -> None:  # fmt: skip
    """Search the index for each TEXT (embedded with the index's model, loaded once for all of them).

    Without --name, and when no index 'default' exists, the only index on
    this Redis answers (after `lshrs demo`, the demo's); with several, they
    are listed.
    """
    model = {"embedding_model": embedding_model, "embedding_device": device, "embedding_backend": embedding_backend}
    with target.open(**model) as lsh:
        if lsh.dim is None and not target.name_given:
            target = _only_other_index(lsh, target)
    with target.open(**model) as lsh:
        if lsh.dim is None:
            raise click.ClickException(f"index {lsh.name!r} is empty or does not exist")
        answers = lsh.query_many(list(texts), top_k=top_k, top_p=top_p, rerank=not no_rerank, num_probes=probes,
                                 alpha=alpha)  # fmt: skip
    if as_json:  # one array of hits for one question (as before), one array per question for several
        rows = [[hit.__dict__ for hit in hits] for hits in answers]
        click.echo(json.dumps(rows[0] if len(rows) == 1 else rows, ensure_ascii=False))
        return
    for text, hits in zip(texts, answers):
        if len(texts) > 1:
            click.echo(click.style(f"? {text}", bold=True))
        for hit in hits:
            click.echo(_format_hit(hit))
        if len(texts) > 1:
            click.echo()


@cli.command()
@target_options()
def stats(target: Target) -> None:
    """Counts, parameters, bucket sizes and Redis memory, as JSON."""
    with target.open() as lsh:
        click.echo(json.dumps(lsh.stats(), indent=2))


@cli.command()
@target_options()
@click.argument("ids", nargs=-1, required=True, type=int)
def delete(target: Target, ids: tuple[int, ...]) -> None:
    """Remove documents by id from the buckets and the store (unknown ids are ignored)."""
    with target.open() as lsh:
        removed = lsh.delete(list(ids))
    click.echo(f"deleted {removed} of {len(ids)}")


@cli.command()
@target_options()
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def clear(target: Target, yes: bool) -> None:
    """Drop the index's Redis keys (buckets, parameters, job checkpoints); the store is left as is."""
    if not yes:
        click.confirm(f"drop index {target.name!r}?", abort=True)
    # Straight to the keys, without reading the definition: a damaged meta hash must be clearable.
    client, owned = connection.connect(None, target.redis_url, target.data_dir)
    try:
        removed = Buckets(client, inputs.check_name(target.name)).clear()
    finally:
        if owned:
            client.close()
    click.echo(f"removed {removed} keys of {target.name!r}")


@cli.command()
@target_options()
@click.option("--repair", "fix", is_flag=True, help="Also make the buckets match the store.")
def verify(target: Target, fix: bool) -> None:
    """Compare the buckets with a fresh re-hash of the store (JSON report); exit 1 on drift unless --repair."""
    with target.open() as lsh:
        report = lsh.repair() if fix else lsh.verify()
    click.echo(json.dumps(report, indent=2))
    if not report["ok"] and not fix:
        raise click.exceptions.Exit(EXIT_INPUT)


# -- tune -------------------------------------------------------------------------


@cli.command("tune")
@target_options()
@click.option(
    "--target-recall",
    type=click.FloatRange(0, 1, min_open=True),
    default=tuning.DEFAULT_TARGET_RECALL,
    show_default=True,
    help="Recall@TOP_K the setting must reach.",
)
@click.option(
    "--top-k",
    "-k",
    type=click.IntRange(min=1),
    default=tuning.DEFAULT_TOP_K,
    show_default=True,
    help="Neighbours per query whose recall is measured.",
)
@click.option(
    "--sample",
    "sample_size",
    type=click.IntRange(min=1),
    default=tuning.DEFAULT_SAMPLE_SIZE,
    show_default=True,
    help="Stored rows drawn at random to tune on (queries included).",
)
@click.option(
    "--queries",
    "num_queries",
    type=click.IntRange(min=1),
    default=tuning.DEFAULT_NUM_QUERIES,
    show_default=True,
    help="Rows of the sample held out as queries.",
)
@click.option(
    "--tables", metavar="N,N,...", callback=int_list, help="num_tables values to try, e.g. 8,12,16 (the default)."
)
@click.option(
    "--bits",
    metavar="N,N,...",
    callback=int_list,
    help="num_bits values to try (default: three around log2(rows) - 4).",
)
@click.option(
    "--probes",
    metavar="N,N,...",
    callback=int_list,
    help=f"num_probes values to try (default {','.join(map(str, tuning.DEFAULT_PROBES))}).",
)
@click.option(
    "--depths",
    metavar="N,N,...",
    callback=int_list,
    help=f"Centroid indexes: rerank_depth values to try (default {','.join(map(str, tune_probes.DEFAULT_DEPTHS))}).",
)
@click.option(
    "--top-p",
    "top_p",
    metavar="P,P,...",
    callback=share_list,
    help=f"top_p shares to try on the fastest passing settings (default {','.join(map(str, tuning.DEFAULT_TOP_P))}; "
    "'none' tries none).",
)
@click.option(
    "--vectors",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Tune on the (n, d) float array in this .npy file instead of a sample of the store.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sample and the held-out queries.")
@click.option(
    "--apply",
    is_flag=True,
    help="Make the chosen setting the index's parameters; new tables or bits rebuild the buckets from "
    "the store (other processes using the index must reopen it).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the whole result as one JSON object.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show progress bars on stderr.")
def tune_command(
    target: Target,
    target_recall: float,
    top_k: int,
    sample_size: int,
    num_queries: int,
    tables: list[int] | None,
    bits: list[int] | None,
    probes: list[int] | None,
    depths: list[int] | None,
    top_p: tuple[float, ...] | None,
    vectors: Path | None,
    seed: int,
    apply: bool,
    as_json: bool,
    progress: bool,
) -> None:
    """Find the fastest setting that reaches a recall on your own vectors.

    A centroid index (the default) times (probes, rerank depth) with real
    queries on itself. A hyperplane index builds each (tables, bits) pair
    as a scratch index of a sample on the same Redis and deletes it
    afterwards. The index's buckets and store are only read (unless
    --apply). Prints every setting measured and the chosen one. Exits 1,
    applying nothing, when no setting reaches --target-recall; the table
    then shows the closest.
    """
    named = (("num_tables", tables), ("num_bits", bits), ("num_probes", probes), ("rerank_depth", depths))
    grid = {k: v for k, v in named if v}
    sample = None if vectors is None else np.load(vectors, allow_pickle=False)
    with target.open(show_progress=progress) as lsh:
        result = lsh.tune(sample, target_recall=target_recall, top_k=top_k, sample_size=sample_size,
                          num_queries=num_queries, grid=grid or None, apply=apply, seed=seed,
                          top_p=tuning.DEFAULT_TOP_P if top_p is None else top_p)  # fmt: skip
    if as_json:
        click.echo(json.dumps(result.to_dict()))
    else:
        click.echo(result.table())
    if not result.met:
        click.echo(f"lshrs: {result.summary()}; nothing applied" if apply else f"lshrs: {result.summary()}", err=True)
        raise click.exceptions.Exit(EXIT_INPUT)
    if not as_json:
        click.echo(result.summary())


def _only_other_index(lsh: LSHRS, target: Target) -> Target:
    """The target of the one index on this Redis, when the default one does not exist; else a usage error."""
    names = index_names(lsh.redis)
    if len(names) == 1:
        click.echo(f"lshrs: no index {target.name!r}; answering from {names[0]!r}, the only one here", err=True)
        return dataclasses.replace(target, name=names[0], name_given=True)
    if names:
        raise click.UsageError(f"no index {target.name!r}; this Redis holds {', '.join(names)}: pass --name")
    raise click.ClickException(f"index {target.name!r} is empty or does not exist (no index on this Redis)")


def _format_hit(hit: Hit) -> str:
    meta = hit.metadata or {}
    title = f"{meta['title']}: " if "title" in meta else ""
    text = " ".join((hit.text or "").split())
    excerpt = text if len(text) <= 160 else text[:157] + "..."
    return f"  {hit.score:6.3f}  [{hit.id}] {title}{excerpt}"


# -- entry point ------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run the command; turn the expected failures into one line on stderr and an exit code."""
    try:
        result = cli.main(args=argv, prog_name="lshrs", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except click.exceptions.Abort as exc:  # click turns Ctrl-C into Abort
        if isinstance(exc.__cause__, KeyboardInterrupt):
            click.echo("lshrs: interrupted; run the same command again to resume", err=True)
            return EXIT_INTERRUPTED
        click.echo("lshrs: aborted", err=True)
        return EXIT_INPUT
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("lshrs: interrupted; run the same command again to resume", err=True)
        return EXIT_INTERRUPTED
    except Exception as exc:
        code = _exit_code(exc)
        if code is None:
            raise
        click.echo(f"lshrs: error: {_one_line(exc)}", err=True)
        return code


def _exit_code(exc: Exception) -> int | None:
    """The exit code of an expected failure; None for a bug (which keeps its traceback)."""
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError, ConnectionError)):
        return EXIT_UNREACHABLE
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None and isinstance(exc, psycopg.OperationalError):
        return EXIT_UNREACHABLE
    if isinstance(exc, (ValueError, TypeError, KeyError, OSError, sqlite3.Error, ImportError, RuntimeError)):
        return EXIT_INPUT
    return None


def _one_line(exc: Exception) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
