"""The verbs' I/O as steps, so one body of logic serves the sync and the async API.

A verb is written once, as a generator that yields a `Step` wherever it
needs Redis, the store or the model, and receives the result back. `run`
performs each step with the blocking clients; `arun` awaits the target's
``a``-prefixed twin where one exists (redis.asyncio for the buckets, async
psycopg for Postgres) and otherwise runs the blocking call in a worker
thread (SQLite, user stores, the embedding model), so the event loop never
blocks.
"""

from __future__ import annotations

import asyncio
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
    """Drive `steps` with blocking calls."""
    try:
        step = next(steps)
        while True:
            result = getattr(targets[step.target], step.method)(*step.args, **step.kwargs)
            step = steps.send(result)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def arun(steps: Steps[T], targets: dict[str, Any]) -> T:
    """Drive `steps` without blocking the event loop."""
    try:
        step = next(steps)
        while True:
            target = targets[step.target]
            native = getattr(target, "a" + step.method, None)
            if native is not None and asyncio.iscoroutinefunction(native):
                result = await native(*step.args, **step.kwargs)
            else:
                blocking = getattr(target, step.method)
                result = await asyncio.to_thread(blocking, *step.args, **step.kwargs)
            step = steps.send(result)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
