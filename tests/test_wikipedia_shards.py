"""The Hugging Face layout (a directory of parquet shards) and article units, on the real dump slice's articles."""

import numpy as np
import pytest
from test_wikipedia import SLICE, hashed_vectors

from lshrs import LSHRS, SQLiteStore
from lshrs.passages import lead, split
from lshrs.pipeline import WikipediaJob
from lshrs.wikipedia import Article, SourceError, read_articles


@pytest.fixture(scope="module")
def articles():
    return list(read_articles(SLICE))


def write_shards(folder, articles, shards=3, row_group=4):
    """The slice's articles as wikimedia/wikipedia publishes them: 20231101.en/train-0000k-of-0000n.parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = folder / "20231101.en"
    root.mkdir(parents=True)
    rows = [{"id": str(a.id), "url": a.url, "title": a.title, "text": a.text} for a in articles]
    per = -(-len(rows) // shards)
    for k in range(shards):
        part = pa.Table.from_pylist(rows[k * per : (k + 1) * per])
        pq.write_table(part, root / f"train-{k:05d}-of-{shards:05d}.parquet", row_group_size=row_group)
    return folder


def test_a_shard_folder_reads_in_order_and_resumes_at_any_row(tmp_path, articles):
    folder = write_shards(tmp_path, articles)
    assert list(read_articles(folder)) == articles
    per = -(-len(articles) // 3)
    # every kind of resume point: inside a row group, at a group's edge, at and across a shard's edge, the end
    for skip in [1, 3, 4, 5, per - 1, per, per + 1, 2 * per + 2, len(articles) - 1, len(articles), len(articles) + 5]:
        assert list(read_articles(folder, skip=skip)) == articles[skip:], skip


def test_an_empty_folder_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="without .parquet files"):
        read_articles(tmp_path)
    with pytest.raises(SourceError, match="no such file or directory"):
        read_articles(tmp_path / "missing")


def test_a_job_over_shards_stopped_in_its_writes_resumes_exactly(tmp_path, redis_client, name, monkeypatch, articles):
    folder = write_shards(tmp_path / "hf", articles[:30])
    expected = sorted(p.id for a in articles[:30] for p in split(a))
    lsh = LSHRS(name=name, redis=redis_client, store=SQLiteStore(tmp_path / "d.sqlite3"), id_bytes=8,
                embedding_model=hashed_vectors)  # fmt: skip
    real, calls = lsh.ingest, []

    def third_write_fails(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise ConnectionError("injected")
        return real(*args, **kwargs)

    monkeypatch.setattr(lsh, "ingest", third_write_fails)
    with pytest.raises(ConnectionError):
        WikipediaJob(lsh, folder, batch_passages=24).run()
    assert 0 < WikipediaJob(lsh, folder, batch_passages=24).state().articles < 30
    monkeypatch.setattr(lsh, "ingest", real)
    state = WikipediaJob(lsh, folder, batch_passages=24).run()
    assert (state.articles, state.passages, state.finished) == (30, len(expected), True)
    stored = np.sort(np.concatenate([rows.ids for rows in lsh.store.scan()]))
    assert stored.tolist() == expected and lsh.verify()["ok"]
    lsh.clear()


def test_the_lead_is_the_prose_before_the_first_heading():
    text = (
        "Ada Lovelace was an English mathematician.\n\nShe wrote the first published algorithm.\n\n"
        "Early life\n\nAda was born in London in 1815.\n\nSee also\n\nCharles Babbage"
    )
    (unit,) = lead(Article(42, "Ada Lovelace", text, "https://en.wikipedia.org/wiki/Ada_Lovelace"))
    assert (unit.id, unit.article_id, unit.number) == (42, 42, 0)
    assert unit.text == "Ada Lovelace was an English mathematician. She wrote the first published algorithm."
    assert lead(Article(43, "Long", "word " * 500, "u"), words=120)[0].text == " ".join(["word"] * 120)
    assert lead(Article(44, "Empty", "  \n\n ", "u")) == []


def test_an_article_job_holds_one_vector_per_article_under_its_page_id(tmp_path, redis_client, name, articles):
    folder = write_shards(tmp_path / "hf", articles[:20])
    lsh = LSHRS(name=name, redis=redis_client, store=SQLiteStore(tmp_path / "d.sqlite3"), id_bytes=8,
                embedding_model=hashed_vectors)  # fmt: skip
    passages_job = WikipediaJob(lsh, folder)
    job = WikipediaJob(lsh, folder, unit="article", batch_passages=8)
    assert job.job != passages_job.job  # another job: its checkpoint is its own
    state = job.run()
    with_text = [a for a in articles[:20] if a.text.split()]
    assert (state.articles, state.passages) == (20, len(with_text))
    stored = {int(i): t for rows in lsh.store.scan() for i, t in zip(rows.ids, rows.texts)}
    assert sorted(stored) == sorted(a.id for a in with_text)
    first = with_text[0]
    assert stored[first.id] == lead(first)[0].text and first.text.startswith(stored[first.id].split()[0])
    with pytest.raises(ValueError, match="unit: expected one of passage, article"):
        WikipediaJob(lsh, folder, unit="section")
    lsh.clear()
