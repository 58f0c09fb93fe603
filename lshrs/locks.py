"""The writer lease: writers of the same ids take turns.

ingest, delete and repair hold a lock on the stripes (id mod LOCK_STRIPES)
of their batch while they read the old rows, write the store and move the
buckets; index() holds every stripe while it reads and writes a chunk.
Without it two upserts of one id can leave the buckets of the loser's
vector behind. The locks are a Redis hash (`Buckets.lock`); this
module only decides what to hold, for how long, and how to let go.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from lshrs.steps import Steps, call

log = logging.getLogger("lshrs")
T = TypeVar("T")

# A crashed writer's stripes free themselves after LOCK_TTL_MS; a writer gives up after LOCK_WAIT_S.
LOCK_STRIPES = 4096
LOCK_TTL_MS = 60_000
LOCK_WAIT_S = 120.0
# index() holds every stripe while it writes a chunk; when a writer waited
# meanwhile, it pauses this long before the next chunk: longer than a waiting
# writer's longest pause between tries (0.25 s below), so the writer gets in.
BUILD_YIELD_S = 0.3
# index()'s lease on every stripe is this short, and renewed after every page it
# reads and before it writes: a build killed mid-chunk holds the index's writers
# (and its own rerun) back for at most this long instead of LOCK_TTL_MS.
BUILD_LEASE_MS = 15_000


@dataclass(frozen=True)
class Lease:
    """A writer's hold on some stripes: its token and time to live."""

    stripes: list[int]
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    ttl_ms: int = field(default_factory=lambda: LOCK_TTL_MS)

    def renew(self) -> Steps[None]:
        """Extend the hold by `ttl_ms` from now (the lock script lets a holder take its own stripes again)."""
        if not (yield call("buckets", "lock", self.stripes, self.token, self.ttl_ms)):
            raise TimeoutError("the writer lease expired and another writer took its ids")


def every_stripe() -> NDArray[np.int64]:
    """All stripes: what a writer that touches every id (repair) holds."""
    return np.arange(LOCK_STRIPES, dtype=np.int64)


def locked(name: str, ids: NDArray[np.int64], body: Steps[T], lease: Lease | None = None) -> Steps[T]:
    """Run `body` holding the writer lock of every stripe of `ids`, with Ctrl-C held back meanwhile.

    A `lease` names the token and time to live (a body that renews it, as
    index() does, passes its own); by default a fresh token for LOCK_TTL_MS.
    A heartbeat renews it meanwhile, however long the body or one of its
    steps takes (a repair() reads the whole store in one step).
    Step targets: ``buckets`` (lock, unlock), ``leases`` (`Heartbeats`),
    ``clock`` (sleep) and ``interrupts``.
    """
    stripes = np.unique(ids % LOCK_STRIPES).tolist()
    lease = lease or Lease(stripes)
    token = lease.token
    waited, pause = 0.0, 0.005
    while not (yield call("buckets", "lock", stripes, token, lease.ttl_ms)):
        if waited > LOCK_WAIT_S:
            raise TimeoutError(f"index {name!r}: another writer held these ids for {waited:.0f} s")
        yield call("clock", "sleep", pause)
        if waited < 1.0 <= waited + pause:
            log.info("index %r: waiting for another writer's lease (a killed writer's expires by itself)", name)
        waited, pause = waited + pause, min(pause * 2, 0.25)
    beat: Beat | None = None
    try:
        yield call("interrupts", "hold")
        beat = yield call("leases", "keep", stripes, token, lease.ttl_ms)
        result = yield from body
        yield call("leases", "end", beat)
    except GeneratorExit:
        if beat is not None:
            beat.cancel()  # no step can run now: the stripes expire after their time to live
        raise
    except BaseException:
        try:
            if beat is not None:
                yield call("leases", "end", beat, check=False)
            yield call("buckets", "unlock", stripes, token)
        except Exception:  # Redis gone too: the stripes expire after LOCK_TTL_MS; the first error matters
            log.warning("index %r: could not release the writer lock", name, exc_info=True)
        yield call("interrupts", "release")
        raise
    # The handler must come back even when the unlock fails (Redis gone after the writes):
    # otherwise this process would swallow every later Ctrl-C.
    try:
        yield call("buckets", "unlock", stripes, token)
    finally:
        yield call("interrupts", "release")  # raises a Ctrl-C that came meanwhile, now that the writes are whole
    return result


class Beat:
    """One running heartbeat: a thread (blocking verbs) or a task (async verbs) renewing a lease."""

    def __init__(self) -> None:
        self.stopped = threading.Event()
        self.task: asyncio.Task[None] | None = None
        self.thread: threading.Thread | None = None
        self.lost = False

    def cancel(self) -> None:
        """Stop renewing, without waiting (callable where no step can run)."""
        self.stopped.set()
        if self.task is not None:
            self.task.cancel()


def beating(period_s: float, renew: Callable[[], bool], thread_name: str) -> Beat:
    """A thread calling `renew` every `period_s` until stopped, or until it answers False (the hold is lost).

    A renewal that raises (Redis unreachable for a moment) is logged and
    tried again at the next beat: the hold lasts a whole time to live, so
    one missed beat of three loses nothing.
    """
    beat = Beat()

    def run() -> None:
        while not beat.stopped.wait(period_s):
            try:
                held = renew()
            except Exception:
                log.warning("could not renew a lease (%s); trying again", thread_name, exc_info=True)
                continue
            if not held:
                beat.lost = True
                return

    beat.thread = threading.Thread(target=run, name=thread_name, daemon=True)
    beat.thread.start()
    return beat


class Heartbeats:
    """The ``leases`` step target: renews a held lease every third of its time to live until the section ends.

    Without it a writer whose batch outlived LOCK_TTL_MS kept writing after its
    stripes had expired, unprotected from a second writer of the same ids.
    A killed process stops beating, so its stripes still expire on their own.
    """

    def __init__(self, buckets: Any) -> None:
        self.buckets = buckets

    def keep(self, stripes: list[int], token: str, ttl_ms: int) -> Beat:
        """Start renewing; renewal only extends what the token still holds (scripts.py's _RENEW)."""
        return beating(ttl_ms / 3000, lambda: bool(self.buckets.renew(stripes, token, ttl_ms)), "lshrs-lease")

    async def akeep(self, stripes: list[int], token: str, ttl_ms: int) -> Beat:
        beat = Beat()

        async def renew() -> None:
            # Ends on `stopped` as well as on cancellation: a cancellation that lands
            # inside redis.asyncio's command can be swallowed there, and a heartbeat
            # that ran on would hold the writer's `aend` (and its ids) for good.
            while not beat.stopped.is_set():
                await asyncio.sleep(ttl_ms / 3000)
                if beat.stopped.is_set():
                    return
                try:
                    held = await self.buckets.arenew(stripes, token, ttl_ms)
                except Exception:
                    log.warning("could not renew the writer lease; trying again", exc_info=True)
                    continue
                if not held:
                    beat.lost = True
                    return

        beat.task = asyncio.create_task(renew())
        return beat

    def end(self, beat: Beat, check: bool = True) -> None:
        beat.cancel()
        if beat.thread is not None:
            beat.thread.join()
        _check(beat, check)

    async def aend(self, beat: Beat, check: bool = True) -> None:
        beat.cancel()
        if beat.task is not None:
            await asyncio.gather(beat.task, return_exceptions=True)
        _check(beat, check)


# One trainer at a time per index; a killed trainer's hold ends after TRAINER_TTL_MS,
# and a live one renews it every third of that.
TRAINER_TTL_MS = 30_000


@contextmanager
def one_trainer(client: Any, key: bytes, name: str) -> Iterator[None]:
    """Hold the index's trainer lock (``lshrs:{name}:training``) for the body; wait while another holds it.

    Two processes that found a centroid index untrained (a first index() and
    an ingest, or two ingests) each trained their own centroids and built
    with them: the buckets ended holding entries of both (stale under the
    definition that won). Under this lock the second finds the index trained
    when its turn comes, and keeps it (Attachment.train).
    """
    token = uuid.uuid4().hex.encode()
    waited = 0.0
    while not client.set(key, token, nx=True, px=TRAINER_TTL_MS):
        if waited < 1.0 <= waited + 0.1:
            log.info("index %r: waiting for another process to finish training", name)
        time.sleep(0.1)
        waited += 0.1
    extend, delete = client.register_script(_EXTEND_IF_MINE), client.register_script(_DELETE_IF_MINE)
    period = TRAINER_TTL_MS / 3000
    beat = beating(period, lambda: bool(extend(keys=[key], args=[token, TRAINER_TTL_MS])), "lshrs-lease-trainer")
    try:
        yield
    finally:
        beat.cancel()
        assert beat.thread is not None
        beat.thread.join()
        delete(keys=[key], args=[token])


_EXTEND_IF_MINE = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"
)
_DELETE_IF_MINE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


def _check(beat: Beat, check: bool) -> None:
    if check and beat.lost:
        raise TimeoutError("the writer lease expired and another writer took its ids meanwhile: see verify()")
