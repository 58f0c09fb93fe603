"""Articles -> the units an index holds: overlapping word windows ("passages"), or one lead per article.

A passage id is ``article_id * PASSAGES_PER_ARTICLE + number``: the same
article always yields the same ids, so re-running a pipeline over the same
input upserts instead of duplicating, and an id tells which article and
which part of it a hit came from. An article unit's id is the article's
own page id: one vector per Wikipedia article, for users who search
documents rather than passages.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from lshrs.wikipedia import Article

PASSAGES_PER_ARTICLE = 10_000
DEFAULT_WORDS = 120
DEFAULT_OVERLAP = 20
UNITS = ("passage", "article")

# A paragraph this short, not ending like a sentence, is a section heading: where
# both inputs' prose (stripped dumps and the Hugging Face rows) puts "History" etc.
_HEADING_WORDS = 12
_SENTENCE_END = re.compile(r"[.!?:;)\]\"'»”]$")


@dataclass(frozen=True)
class Passage:
    id: int
    article_id: int
    number: int
    title: str
    text: str
    url: str

    @property
    def embedding_text(self) -> str:
        """What gets embedded: the title gives a passage the topic its own words may not name."""
        return f"{self.title}\n{self.text}"

    @property
    def metadata(self) -> dict[str, str | int]:
        return {"title": self.title, "url": self.url, "article_id": self.article_id, "passage": self.number}


def check_window(words: int, overlap: int) -> None:
    if words < 1:
        raise ValueError(f"passage size: expected at least 1 word, got {words}")
    if not 0 <= overlap < words:
        raise ValueError(f"overlap: expected 0 <= overlap < size ({words}), got {overlap}")


def split(article: Article, *, words: int = DEFAULT_WORDS, overlap: int = DEFAULT_OVERLAP) -> list[Passage]:
    """Windows of `words` words, each sharing `overlap` words with the previous one."""
    check_window(words, overlap)
    tokens = article.text.split()
    step = words - overlap
    starts = range(0, max(len(tokens) - overlap, 1), step)
    if len(starts) > PASSAGES_PER_ARTICLE:
        raise ValueError(
            f"article {article.id} ({article.title!r}) would give {len(starts)} passages, "
            f"more than {PASSAGES_PER_ARTICLE}: use larger passages"
        )
    return [
        Passage(
            article.id * PASSAGES_PER_ARTICLE + number,
            article.id,
            number,
            article.title,
            " ".join(tokens[start : start + words]),
            article.url,
        )
        for number, start in enumerate(starts)
        if tokens
    ]


def passages(
    articles: Iterable[Article], *, words: int = DEFAULT_WORDS, overlap: int = DEFAULT_OVERLAP
) -> Iterator[Passage]:
    for article in articles:
        yield from split(article, words=words, overlap=overlap)


def lead(article: Article, *, words: int = DEFAULT_WORDS) -> list[Passage]:
    """The article's lead section (the paragraphs before its first heading), cut at `words` words.

    One unit per article, numbered 0, with the article's page id as its
    id; an article without text gives none.
    """
    paragraphs: list[str] = []
    for paragraph in (p.strip() for p in article.text.split("\n")):
        if not paragraph:
            continue
        if paragraphs and _is_heading(paragraph):
            break
        paragraphs.append(paragraph)
    tokens = " ".join(paragraphs).split()[:words]
    if not tokens:
        return []
    return [Passage(article.id, article.id, 0, article.title, " ".join(tokens), article.url)]


def _is_heading(paragraph: str) -> bool:
    return len(paragraph.split()) <= _HEADING_WORDS and not _SENTENCE_END.search(paragraph)


def units(article: Article, *, unit: str, words: int, overlap: int) -> list[Passage]:
    """What one article adds to an index of `unit`s (see UNITS)."""
    if unit == "article":
        return lead(article, words=words)
    if unit == "passage":
        return split(article, words=words, overlap=overlap)
    raise ValueError(f"unit: expected one of {', '.join(UNITS)}, got {unit!r}")
