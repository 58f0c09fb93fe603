"""Stages that run at once: a producer thread that reads ahead, and a writer thread that writes behind.

The Wikipedia job reads (parse), embeds and writes. One after another, it
runs at the sum of the three; overlapped, at the pace of the slowest. Both
helpers keep at most `depth` items in flight (memory stays bounded) and
keep order: the writer is one thread, so batches land, and checkpoints
advance, in the order they were read. An error in either thread is raised
in the caller's thread at its next hand-over.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
_DONE = object()


def read_ahead(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """`items`, produced by a background thread up to `depth` ahead of the consumer.

    Closing the returned generator (the consumer stopped early or failed)
    stops the producer at its next item.
    """
    handed: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if not _put(handed, item, stop):
                    return
            _put(handed, _DONE, stop)
        except BaseException as exc:  # handed to the consumer, raised there
            _put(handed, _Failed(exc), stop)

    thread = threading.Thread(target=produce, name="lshrs-read-ahead", daemon=True)
    thread.start()
    try:
        while (item := handed.get()) is not _DONE:
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()
        close = getattr(items, "close", None)
        if close is not None:
            close()  # a generator's cleanup (a process pool's shutdown) runs now, not at garbage collection


class WriteSkipped(Exception):
    """A write that did not run because one before it failed (the earlier error is raised first)."""


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def _put(handed: queue.Queue[Any], item: Any, stop: threading.Event) -> bool:
    """Put unless the consumer has gone; False once it has."""
    while not stop.is_set():
        try:
            handed.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


class WriteBehind:
    """Runs writes in one background thread, in submission order, at most `depth` queued.

    `submit` blocks while `depth` writes are pending and raises the error of
    any finished write; leaving the `with` block waits for every write and
    raises the first error. Leaving it on an error lets the write under way
    finish and drops the queued ones.

    A write queued behind one that failed does not run: each write advances
    a checkpoint, and one landing after a failed one would move it past
    the failed batch, which a resumed job would then never write.
    """

    def __init__(self, depth: int = 2) -> None:
        self._depth = depth
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lshrs-write-behind")
        self._pending: list[Future[None]] = []
        self._failed = threading.Event()

    def submit(self, write: Callable[[], None]) -> None:
        self._check(block=False)
        while len(self._pending) >= self._depth:
            self._pending.pop(0).result()
        self._pending.append(self._pool.submit(self._run, write))

    def _run(self, write: Callable[[], None]) -> None:
        """One write, in the writer thread; none after a failure."""
        if self._failed.is_set():
            raise WriteSkipped("an earlier write failed")
        try:
            write()
        except BaseException:
            self._failed.set()
            raise

    def _check(self, *, block: bool) -> None:
        while self._pending and (block or self._pending[0].done()):
            self._pending.pop(0).result()

    def __enter__(self) -> WriteBehind:
        return self

    def __exit__(self, *exc: object) -> None:
        failed = exc[0] is not None
        try:
            if not failed:
                self._check(block=True)
        finally:
            # on an error the write under way finishes (and checkpoints); queued ones are dropped, redone on resume
            self._pool.shutdown(wait=True, cancel_futures=failed)
