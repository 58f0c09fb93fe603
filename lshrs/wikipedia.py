"""Wikipedia articles from the published inputs, streamed one at a time.

Three sources give the same `Article` records:

- MediaWiki XML dumps (``*-pages-articles*.xml`` or ``.xml.bz2``), parsed
  incrementally; redirects and pages outside the article namespace are
  skipped, and wiki markup is stripped with mwparserfromhell.
- Hugging Face ``wikimedia/wikipedia`` rows (``id``, ``url``, ``title``,
  ``text``) saved as parquet or JSON lines, or the dataset's directory of
  parquet shards as published (``20231101.en/train-*-of-00041.parquet``),
  which needs no markup parse: its text is prose already.
- A Hugging Face ``datasets`` object, or any iterable of such row dicts.

Nothing here holds more than one article (or one parquet row group) in memory.
"""

from __future__ import annotations

import bz2
import collections
import io
import itertools
import json
import multiprocessing
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

ARTICLE_NAMESPACE = "0"
_URL = "https://en.wikipedia.org/wiki/"
# What strip_code leaves behind that is not prose: category/file link lines
# (strip_code keeps their text) and runs of blank lines.
_LEFTOVER_LINE = re.compile(r"^\s*(?:Category|File|Image|thumb\|)[^\n]*$", re.MULTILINE | re.IGNORECASE)
_BLANK_RUNS = re.compile(r"\n{3,}")
# References the parser could not close (an unbalanced '' inside <ref> leaves it as text).
_LEFTOVER_REF = re.compile(r"<ref[^>]*/>|<ref[^>]*>.*?</ref>", re.DOTALL | re.IGNORECASE)
# Trailing sections that are lists of links, not prose worth retrieving.
_BACK_MATTER = r"(?i)^\s*(see also|references|external links|further reading|notes|bibliography|sources|citations)\s*$"
# Pages per pool task when several workers strip markup: enough to amortise the pickling,
# few enough that the first articles arrive at once.
PAGES_PER_TASK = 4
# Tasks submitted ahead per worker: enough to keep every worker busy, few enough
# that a consumer stopping early waits only for these.
TASKS_PER_WORKER = 2


class SourceError(ValueError):
    """An input that cannot be read as Wikipedia articles (one line for the user)."""


@dataclass(frozen=True)
class Article:
    id: int
    title: str
    text: str
    url: str


def read_articles(
    source: str | Path | Iterable[Mapping[str, Any]], *, skip: int = 0, workers: int = 1
) -> Iterator[Article]:
    """Articles from a dump, a parquet/JSONL file, a directory of parquet shards, or rows (a `datasets` object).

    Args:
        skip: articles to pass over first (a resumed job); a dump's skipped
            pages are not converted from markup, so skipping is cheap.
        workers: processes converting a dump's markup (the costly part of
            reading one); the articles come out in dump order whatever the count.

    Every article is yielded, even one whose text is empty, so that the
    position in the sequence is a checkpoint that resumes exactly.
    """
    if not isinstance(source, (str, Path)):
        return itertools.islice(read_rows(source), skip, None)
    path = Path(source)
    if path.is_dir():
        return read_parquet_files(parquet_shards(path), skip=skip)
    if not path.is_file():
        raise SourceError(f"{path}: no such file or directory")
    kind = sniff(path)
    if kind == "dump":
        return read_dump(path, skip=skip, workers=workers)
    if kind == "parquet":
        return read_parquet_files([path], skip=skip)
    if kind == "jsonl":
        return itertools.islice(read_jsonl(path), skip, None)
    raise SourceError(f"{path}: expected a MediaWiki XML dump (optionally .bz2), a parquet or a JSON lines file")


def sniff(path: Path) -> str | None:
    """The input kind by content, not name: dump part files are named like ``...xml-p1p41242.bz2``."""
    with open(path, "rb") as raw:
        head = raw.read(4)
    if head == b"PAR1":
        return "parquet"
    try:
        with _open(path) as stream:
            start = stream.read(4096).lstrip()
    except (OSError, EOFError):
        return None
    if start.startswith(b"<") and b"<mediawiki" in start:
        return "dump"
    if start.startswith(b"{"):
        return "jsonl"
    return None


# -- MediaWiki XML dumps ------------------------------------------------------


def read_dump(path: str | Path, *, skip: int = 0, workers: int = 1) -> Iterator[Article]:
    """Article pages of a MediaWiki export, markup stripped, in dump order.

    This process reads the XML; with `workers` > 1 a process pool strips
    the markup (mwparserfromhell, nine tenths of the time), a few pages per
    task, and the articles come back in the order they were read.

    This thread submits the tasks itself, at most TASKS_PER_WORKER per
    worker ahead, and a consumer that stops early waits only for the tasks
    under way. `multiprocessing.Pool.imap` fed the whole dump from the
    pool's own thread, and `Pool.terminate` then hung for good now and then
    (a CI run): that thread sat in a send of a large task on a full pipe
    whose reader had just been terminated. The executor also survives a
    worker killed mid-task (Ctrl-C reaches the workers too): its pending
    tasks fail instead of waiting forever.
    """
    pages = _dump_pages(path, skip)
    if workers <= 1:
        yield from map(_stripped, pages)
        return
    # spawn, not fork: the caller may hold threads and connections (the embedding model, Redis)
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    ahead: collections.deque[Future[list[Article]]] = collections.deque()
    try:
        for task in _tasks(pages):
            ahead.append(pool.submit(_stripped_all, task))
            if len(ahead) >= TASKS_PER_WORKER * workers:
                yield from ahead.popleft().result()
        while ahead:
            yield from ahead.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # the tasks not started are dropped


def _tasks(pages: Iterator[Article]) -> Iterator[list[Article]]:
    task: list[Article] = []
    for page in pages:
        task.append(page)
        if len(task) == PAGES_PER_TASK:
            yield task
            task = []
    if task:
        yield task


def _stripped_all(pages: list[Article]) -> list[Article]:
    """One pool task: several pages' markup turned into prose."""
    return [_stripped(page) for page in pages]


def _dump_pages(path: str | Path, skip: int) -> Iterator[Article]:
    """The article pages after the first `skip`, their text still wiki markup."""
    seen = 0
    with _open(path) as stream:
        try:
            for _, element in ET.iterparse(stream, events=("end",)):
                if _local(element.tag) != "page":
                    continue
                article = _page_article(element, keep=seen >= skip)
                element.clear()  # keep memory flat over a multi-GB dump
                if article is not None:
                    seen += 1
                    if seen > skip:
                        yield article
        except (ET.ParseError, OSError, EOFError) as exc:
            raise SourceError(f"{path}: not a readable MediaWiki XML dump ({exc})") from None


def _stripped(page: Article) -> Article:
    """The page with its markup turned into prose (a pool task: a top-level function)."""
    return Article(page.id, page.title, plain_text(page.text), page.url)


def _open(path: str | Path) -> IO[bytes]:
    """The file, decompressed when it is bzip2 (by its magic bytes)."""
    with open(path, "rb") as raw:
        compressed = raw.read(3) == b"BZh"
    return bz2.open(path, "rb") if compressed else open(path, "rb")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _page_article(page: ET.Element, *, keep: bool = True) -> Article | None:
    """The page as an article with its markup (empty when not `keep`), None for redirects and other namespaces."""
    fields = {_local(child.tag): child for child in page}
    if "redirect" in fields or (fields.get("ns") is not None and fields["ns"].text != ARTICLE_NAMESPACE):
        return None
    revision = fields.get("revision")
    text_el = None if revision is None else next((c for c in revision if _local(c.tag) == "text"), None)
    title = fields["title"].text if "title" in fields else None
    if text_el is None or not text_el.text or not title or "id" not in fields:
        return None
    if text_el.text.lstrip().lower().startswith("#redirect"):  # dumps without <redirect> elements
        return None
    return Article(int(fields["id"].text or 0), title, text_el.text if keep else "", _URL + title.replace(" ", "_"))


def plain_text(wikitext: str) -> str:
    """Readable prose from wiki markup: templates, tables, refs and link syntax removed."""
    import mwparserfromhell

    code = mwparserfromhell.parse(wikitext)
    for section in code.get_sections(levels=[2], matches=_BACK_MATTER):
        try:
            code.remove(section)
        except ValueError:
            pass
    for tag in code.filter_tags(recursive=True, matches=lambda n: str(n.tag).lower() in {"ref", "table", "gallery"}):
        try:
            code.remove(tag)
        except ValueError:
            pass
    text = code.strip_code(normalize=True, collapse=True)
    text = _LEFTOVER_LINE.sub("", _LEFTOVER_REF.sub("", text))
    return _BLANK_RUNS.sub("\n\n", text).strip()


# -- Hugging Face wikimedia/wikipedia rows ------------------------------------


def read_rows(rows: Iterable[Mapping[str, Any]]) -> Iterator[Article]:
    """Articles from row dicts with id, title, text (url optional)."""
    for number, row in enumerate(rows):
        missing = {"id", "title", "text"} - set(row)
        if missing:
            raise SourceError(f"row {number}: missing {', '.join(sorted(missing))} (expected id, url, title, text)")
        try:
            article_id = int(row["id"])
        except (TypeError, ValueError):
            raise SourceError(f"row {number}: id {row['id']!r} is not an integer") from None
        title = str(row["title"])
        url = str(row.get("url") or _URL + title.replace(" ", "_"))
        yield Article(article_id, title, str(row["text"] or "").strip(), url)


def read_jsonl(path: str | Path) -> Iterator[Article]:
    def rows() -> Iterator[Mapping[str, Any]]:
        with io.TextIOWrapper(_open(path), encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise SourceError(f"{path}:{number}: not JSON ({exc.msg})") from None

    return read_rows(rows())


def shard_files(folder: Path) -> list[Path]:
    """The parquet files under `folder`, in name order: the Hugging Face layout, e.g.
    ``20231101.en/train-00000-of-00041.parquet``, read in its published order."""
    return sorted(p for p in folder.rglob("*.parquet") if p.is_file())


def parquet_shards(folder: Path) -> list[Path]:
    """`shard_files`, or SourceError for a folder without any."""
    shards = shard_files(folder)
    if not shards:
        raise SourceError(f"{folder}: a directory without .parquet files")
    return shards


def read_parquet_files(paths: Sequence[Path], *, skip: int = 0) -> Iterator[Article]:
    """Articles of the shards in order, after the first `skip` rows.

    A resumed job passes over whole shards and row groups by their row
    counts in the files' footers, reading none of their text: resuming at
    row 6 million of 41 shards costs the footers, not the rows before it.
    """
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise SourceError("reading parquet needs pyarrow: pip install 'lshrs[wikipedia]'") from None

    def rows() -> Iterator[Mapping[str, Any]]:
        left = skip
        for path in paths:
            try:
                table = pq.ParquetFile(path)
            except Exception as exc:  # pyarrow raises several types for a bad file
                raise SourceError(f"{path}: not a readable parquet file ({exc})") from None
            columns = [c for c in ("id", "url", "title", "text") if c in table.schema_arrow.names]
            for group in range(table.metadata.num_row_groups):
                size = table.metadata.row_group(group).num_rows
                if left >= size:
                    left -= size
                    continue
                for batch in table.iter_batches(batch_size=1_000, row_groups=[group], columns=columns):
                    if left >= batch.num_rows:
                        left -= batch.num_rows
                        continue
                    yield from batch.slice(left).to_pylist()
                    left = 0

    return read_rows(rows())
