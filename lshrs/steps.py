"""The verbs' I/O as steps, so one body of logic serves the sync and the async API.

A verb is written once, as a generator that yields a `Step` wherever it
needs Redis, the store or the model, and receives the result back. `run`
performs each step with the blocking clients; `arun` awaits the target's
``a``-prefixed twin where one exists (redis.asyncio for the buckets, async
psycopg for Postgres) and otherwise runs the blocking call in a worker
thread (SQLite, user stores, the embedding model), so the event loop never
blocks. A step that fails raises its exception at the generator's `yield`,
so a verb can clean up (release a lock) with an ordinary try/finally.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")
Steps = Generator["Step", Any, T]


@dataclass(frozen=True)
class Step:
    """Call ``targets[target].method(*args, **kwargs)``."""

    target: str
    method: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


def call(target: str, method: str, *args: Any, **kwargs: Any) -> Step:
    return Step(target, method, args, kwargs)


def inline(fn: Callable[[], T]) -> Steps[T]:
    """`fn` as a body of no steps: for a section (`locks.locked`) whose work is one direct call."""
    return fn()
    yield  # unreachable: makes this a generator


def run(steps: Steps[T], targets: dict[str, Any]) -> T:
    """Drive `steps` with blocking calls; a failing call raises inside the generator, at its step."""
    try:
        step = next(steps)
        while True:
            try:
                value, ok = getattr(targets[step.target], step.method)(*step.args, **step.kwargs), True
            except Exception as exc:
                value, ok = exc, False
            step = steps.send(value) if ok else steps.throw(value)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def arun(steps: Steps[T], targets: dict[str, Any]) -> T:
    """Drive `steps` without blocking the event loop.

    A cancellation at a step is thrown into the generator like any error,
    so its cleanup steps run (a writer releases its lease at once instead
    of holding its ids until the lease expires) before it propagates.
    Inside a writer's section (`Interrupts.ahold`) a cancellation waits
    until the section ends, as Ctrl-C does for `run`.
    """
    guard = targets.get("interrupts")
    try:
        step = next(steps)
        while True:
            try:
                work = _perform(targets[step.target], step)
                value, ok = await (guard.through(work) if guard is not None and guard.deferring else work), True
            except (Exception, asyncio.CancelledError) as exc:
                value, ok = exc, False
            step = steps.send(value) if ok else steps.throw(value)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def _perform(target: Any, step: Step) -> Any:
    native = getattr(target, "a" + step.method, None)
    if native is not None and asyncio.iscoroutinefunction(native):
        return await native(*step.args, **step.kwargs)
    return await asyncio.to_thread(getattr(target, step.method), *step.args, **step.kwargs)


class Clock:
    """Waiting as a step target: a blocking sleep for `run`, an asyncio one for `arun`."""

    sleep = staticmethod(time.sleep)
    asleep = staticmethod(asyncio.sleep)


class Interrupts:
    """Ctrl-C, or an asyncio cancellation, held back while a verb writes the store and then the buckets.

    A KeyboardInterrupt between the two writes (or half way through a bucket
    pipeline) would leave rows the buckets do not count; held back, it is
    raised as soon as the section ends. The blocking driver can do this only
    in the main thread (signal handlers live there); elsewhere it is a no-op.
    The async driver defers a task's cancellation the same way: a store
    write already running in a worker thread finishes anyway, so a
    cancellation raised there would leave the buckets behind the store.
    One instance serves one verb's run.
    """

    def __init__(self) -> None:
        self._previous: Any = None
        self._pending = False
        self.deferring = False
        self._cancelled = False

    def hold(self) -> None:
        if threading.current_thread() is threading.main_thread() and self._previous is None:
            self._previous = signal.signal(signal.SIGINT, self._defer)

    def release(self) -> None:
        if self._previous is None:
            return
        signal.signal(signal.SIGINT, self._previous)
        self._previous = None
        if self._pending:
            self._pending = False
            raise KeyboardInterrupt

    async def ahold(self) -> None:
        self.deferring = True

    async def arelease(self) -> None:
        self.deferring = False
        if self._cancelled:
            self._cancelled = False
            raise asyncio.CancelledError

    async def through(self, work: Awaitable[T]) -> T:
        """Await `work` to its end though the task is cancelled meanwhile; the cancellation is raised at `arelease`."""
        task = asyncio.ensure_future(work)
        while True:
            try:
                return await asyncio.shield(task)
            except asyncio.CancelledError:
                if task.cancelled():
                    raise
                self._cancelled = True

    def _defer(self, signum: int, frame: Any) -> None:
        self._pending = True
