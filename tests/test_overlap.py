"""The overlapped stages' plumbing: order, bounded read-ahead, errors raised where the caller is."""

from __future__ import annotations

import threading
import time

import pytest

from lshrs.overlap import WriteBehind, read_ahead


def test_read_ahead_keeps_order_and_stays_bounded():
    produced = []

    def items():
        for i in range(50):
            produced.append(i)
            yield i

    out = []
    for item in read_ahead(items(), depth=2):
        time.sleep(0.001)
        assert len(produced) - len(out) <= 4  # the queue (2), the one in hand, the one being put
        out.append(item)
    assert out == list(range(50))


def test_read_ahead_raises_the_producers_error_in_the_consumer():
    def items():
        yield 1
        raise OSError("disk gone")

    got = []
    with pytest.raises(OSError, match="disk gone"):
        for item in read_ahead(items()):
            got.append(item)
    assert got == [1]


def test_a_consumer_that_stops_early_stops_the_producer_and_closes_it():
    closed = threading.Event()

    def items():
        try:
            yield from range(10**9)
        finally:
            closed.set()

    reader = read_ahead(items(), depth=2)
    assert next(reader) == 0
    reader.close()
    assert closed.is_set()


def test_write_behind_runs_in_order_and_reports_errors():
    done = []
    with WriteBehind(depth=2) as writer:
        for i in range(20):
            writer.submit(lambda i=i: done.append(i))
    assert done == list(range(20))

    def fails():
        raise ConnectionError("redis gone")

    with pytest.raises(ConnectionError, match="redis gone"):
        with WriteBehind(depth=2) as writer:
            writer.submit(fails)
            for _ in range(5):
                writer.submit(lambda: time.sleep(0.01))


def test_write_behind_on_an_error_finishes_the_write_under_way_and_drops_the_queued():
    started, done = threading.Event(), []

    def slow(i):
        started.set()
        time.sleep(0.2)
        done.append(i)

    with pytest.raises(KeyboardInterrupt):
        with WriteBehind(depth=3) as writer:
            for i in range(3):
                writer.submit(lambda i=i: slow(i))
            started.wait()
            raise KeyboardInterrupt
    assert done == [0]


def test_write_behind_runs_no_write_queued_behind_a_failed_one():
    """Found by a job over parquet shards: the write after a failed one ran and moved the checkpoint past it."""
    release, done = threading.Event(), []

    def fails():
        release.wait()
        raise ConnectionError("redis gone")

    with pytest.raises(ConnectionError, match="redis gone"):
        with WriteBehind(depth=2) as writer:
            writer.submit(fails)
            writer.submit(lambda: done.append("after"))  # queued while the first is under way
            release.set()
            time.sleep(0.2)  # the writer thread reaches the queued write
            writer.submit(lambda: done.append("later"))
    assert done == []
