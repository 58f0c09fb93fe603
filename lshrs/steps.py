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
import time
from collections.abc import Generator
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


def run(steps: Steps[T], targets: dict[str, Any]) -> T:
    """Drive `steps` with blocking calls; a failing call raises inside the generator, at its step."""
    reply: tuple[bool, Any] = (True, None)
    try:
        step = next(steps)
        while True:
            try:
                reply = (True, getattr(targets[step.target], step.method)(*step.args, **step.kwargs))
            except Exception as exc:
                reply = (False, exc)
            step = steps.send(reply[1]) if reply[0] else steps.throw(reply[1])
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def arun(steps: Steps[T], targets: dict[str, Any]) -> T:
    """Drive `steps` without blocking the event loop."""
    reply: tuple[bool, Any] = (True, None)
    try:
        step = next(steps)
        while True:
            try:
                reply = (True, await _perform(targets[step.target], step))
            except Exception as exc:
                reply = (False, exc)
            step = steps.send(reply[1]) if reply[0] else steps.throw(reply[1])
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
