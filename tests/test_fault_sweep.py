"""A fault at every I/O call of every writing verb: nothing lost, duplicated or resurrected.

PROBING.md's techniques, made exhaustive. Each verb runs once per I/O call it
makes (every Redis command, pipeline and exchange, sync or asyncio, stepped or not, and
every store read and write), and at that call one of:

- **raise before**: the call never reaches its server (a dropped connection
  that redis-py's retries did not survive), and the verb raises;
- **raise after**: the call ran but its reply is lost, and the verb raises;
- **kill**: the process is SIGKILLed right after the call (the verb runs in a
  forked child);
- **second writer**: another writer, in a thread with its own client and its
  own store connection, writes some of the same ids meanwhile.

Then the verb is run again without faults (not after a second writer, whose
run completes). Afterwards the buckets must equal the store (verify), the
store must hold exactly what the verbs were asked to write in some order, the
written vectors must be found through the buckets, and a deleted id must
never come back, even with ``rerank=False``. Real Redis, a real SQLite file.
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import redis
import redis.asyncio
from conftest import clustered

from lshrs import LSHRS, SQLiteStore, locks
from lshrs.buckets import wire

DIM = 16
BASE = 200  # rows before the verb: enough to train a centroid index
BATCH = 20  # so a verb of 50 rows writes in parts, and index() reads in pages
NEW = np.arange(1_000, 1_050)  # ids a fresh ingest adds
OLD = np.arange(100, 150)  # ids a replace or delete touches
RACED = OLD[:10]  # ids the second writer writes
ORIGINAL = clustered(BASE, dim=DIM, seed=3)
REPLACEMENTS = clustered(len(OLD), dim=DIM, seed=4)
ADDITIONS = clustered(len(NEW), dim=DIM, seed=5)
OTHER = clustered(len(RACED), dim=DIM, seed=6)
MODES = ("raise-before", "raise-after", "kill", "second-writer")


class Injected(ConnectionError):
    """The fault this module injects."""


@dataclass
class Plan:
    """What to do at the `at`-th I/O call (1-based) of the verb's own threads while armed."""

    mode: str = ""
    at: int = 0
    armed: bool = False
    calls: int = 0
    fired: bool = False
    names: list[str] = field(default_factory=list)
    second: Callable[[], None] | None = None
    second_thread: threading.Thread | None = None
    spared: set[int] = field(default_factory=set)  # threads whose calls are not the verb's (the second writer)

    def hit(self, name: str) -> bool:
        thread = threading.current_thread()
        if not self.armed or thread.ident in self.spared or thread.name.startswith("lshrs-lease"):
            return False
        self.calls += 1
        self.names.append(name)
        if self.calls != self.at:
            return False
        self.fired = True
        if self.mode == "second-writer" and self.second is not None:
            self.second_thread = threading.Thread(target=self._second, name="second-writer")
            self.second_thread.start()
            return False
        return True

    def _second(self) -> None:
        self.spared.add(threading.get_ident())  # before its first call
        assert self.second is not None
        self.second()

    def done(self, after: bool) -> None:
        """The call ran (`after`) or is about to: raise or kill as planned."""
        if self.mode == "kill" and after:
            os.kill(os.getpid(), signal.SIGKILL)
        if self.mode == f"raise-{'after' if after else 'before'}":
            raise Injected(f"injected {self.mode}")


def faulty(plan: Plan, name: str, method: Callable) -> Callable:
    """`method` with the plan's fault at its call, for blocking methods and coroutine functions alike."""
    if asyncio.iscoroutinefunction(method):

        @functools.wraps(method)
        async def async_wrapper(*args, **kwargs):
            fail = plan.hit(name)
            if fail:
                plan.done(after=False)
            result = await method(*args, **kwargs)
            if fail:
                plan.done(after=True)
            return result

        return async_wrapper

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        fail = plan.hit(name)
        if fail:
            plan.done(after=False)
        result = method(*args, **kwargs)
        if fail:
            plan.done(after=True)
        return result

    return wrapper


@pytest.fixture
def plan(monkeypatch) -> Plan:
    """Every Redis command, pipeline and exchange (sync, asyncio) and each SQLiteStore I/O call go through the plan."""
    plan = Plan()
    # A killed writer's lease, or a lost unlock, holds the ids this long instead of a minute.
    monkeypatch.setattr(locks, "LOCK_TTL_MS", 300)
    monkeypatch.setattr(locks, "BUILD_LEASE_MS", 300)
    monkeypatch.setattr(locks, "TRAINER_TTL_MS", 600)
    for cls, method in [
        (redis.client.Redis, "execute_command"),
        (redis.client.Pipeline, "execute"),
        (redis.asyncio.client.Redis, "execute_command"),
        (redis.asyncio.client.Pipeline, "execute"),
    ]:
        monkeypatch.setattr(cls, method, faulty(plan, f"redis {method}", getattr(cls, method)))
    # lshrs' own round trips (bucket reads and writes on a standalone server) bypass Pipeline
    monkeypatch.setattr(wire, "exchange", faulty(plan, "redis exchange", wire.exchange))
    for method in ("get", "put", "delete", "count", "scan"):
        monkeypatch.setattr(SQLiteStore, method, faulty(plan, f"store {method}", getattr(SQLiteStore, method)))
    return plan


def opened(redis_url: str, name: str, family: str, path: Path) -> LSHRS:
    store = SQLiteStore(path, table="docs")
    return LSHRS(redis_url=redis_url, name=name, store=store, family=family, exact_below=0, batch_size=BATCH)


def setup(redis_url: str, name: str, family: str, verb: str, path: Path) -> LSHRS:
    lsh = opened(redis_url, name, family, path)
    lsh.store.put(np.arange(BASE), ORIGINAL, [f"row {i}" for i in range(BASE)], None)
    if verb != "index":
        lsh.index()
    if verb == "repair":
        lost = lsh.redis.keys(f"lshrs:{name}:b:*")[:5]  # drift for repair to mend
        lsh.redis.delete(*lost)
    return lsh


VERBS: dict[str, Callable[[LSHRS], object]] = {
    "ingest": lambda lsh: lsh.ingest(vectors=ADDITIONS, ids=NEW),
    "replace": lambda lsh: lsh.ingest(vectors=REPLACEMENTS, ids=OLD),
    "delete": lambda lsh: lsh.delete(OLD),
    "index": lambda lsh: lsh.index(),
    "repair": lambda lsh: lsh.repair(),
    "aingest": lambda lsh: asyncio.run(lsh.aingest(vectors=ADDITIONS, ids=NEW)),
    "areplace": lambda lsh: asyncio.run(lsh.aingest(vectors=REPLACEMENTS, ids=OLD)),
    "adelete": lambda lsh: asyncio.run(lsh.adelete(OLD)),
}


def expected_rows(verb: str, raced: bool) -> dict[int, list[np.ndarray]]:
    """Each id the store must hold, with the vectors it may hold (a race allows either writer's)."""
    base = verb.removeprefix("a")
    rows = {i: [ORIGINAL[i]] for i in range(BASE)}
    if base == "ingest":
        rows.update({int(i): [v] for i, v in zip(NEW, ADDITIONS)})
    if base == "replace":
        rows.update({int(i): [v] for i, v in zip(OLD, REPLACEMENTS)})
    if base == "delete":
        for i in OLD.tolist():
            del rows[i]
    if raced:  # the second writer's ingest came last, or (replace, delete) the verb's write did
        for i, v in zip(RACED.tolist(), OTHER):
            rows[i] = [v] if base not in ("replace", "delete") else [*rows.get(i, [None]), v]
    return rows


def check(lsh: LSHRS, verb: str, raced: bool) -> None:
    report = lsh.verify()
    assert report["ok"], str({k: v for k, v in report.items() if v})
    rows = expected_rows(verb, raced)
    stored = lsh.store.get(np.arange(2_000), payload=False)
    held = dict(zip(stored.ids.tolist(), stored.vectors))
    optional = {i for i, options in rows.items() if options[0] is None}
    assert set(rows) - optional <= set(held) <= set(rows), "ids lost or resurrected"
    for i, vector in held.items():
        assert any(o is not None and np.allclose(vector, o) for o in rows[i]), f"id {i} holds a vector nobody wrote"
    written = [i for i in (*NEW.tolist(), *OLD.tolist()) if i in held]
    hits = lsh.query_many(np.stack([held[i] for i in written[:20]]), top_k=1, num_probes=64) if written else []
    assert [h[0].id for h in hits] == written[:20], "a written vector is not found through the buckets"
    gone = set(OLD.tolist()) - set(held)
    if gone:
        leaked = {h.id for row in lsh.query_many(REPLACEMENTS, top_k=20, rerank=False) for h in row}
        assert not leaked & gone, "a deleted id came back"


def run_once(plan: Plan, lsh: LSHRS, path: Path, family: str, verb: str, mode: str, at: int) -> tuple[bool, bool]:
    """The verb with the fault at call `at`; (whether it fired, whether a second writer ran)."""
    plan.mode, plan.at, plan.calls, plan.fired, plan.names, plan.spared = mode, at, 0, False, [], set()
    plan.second_thread = None
    if mode == "kill":
        return _killed(plan, lsh, path, family, verb), False
    plan.second = lambda: opened(_url(lsh), lsh.name, family, path).ingest(vectors=OTHER, ids=RACED)
    plan.armed = True
    try:
        VERBS[verb](lsh)
    except Injected:
        pass
    finally:
        plan.armed = False
    if plan.second_thread is not None:
        plan.second_thread.join()
    return plan.fired, plan.second_thread is not None


def _killed(plan: Plan, lsh: LSHRS, path: Path, family: str, verb: str) -> bool:
    """Run the verb in a forked child that SIGKILLs itself after call `at`; True if it was killed."""

    def child() -> None:
        own = opened(_url(lsh), lsh.name, family, path)
        plan.armed = True
        VERBS[verb](own)
        os._exit(0)

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(60)
    assert process.exitcode in (0, -signal.SIGKILL), process.exitcode
    return process.exitcode == -signal.SIGKILL


def _url(lsh: LSHRS) -> str:
    kwargs = lsh.redis.connection_pool.connection_kwargs
    return f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs.get('db', 0)}"


def positions(calls: int) -> list[int]:
    """Which calls get the fault: the first six (the verb's first part or page: every kind of
    call it makes), the last one (its unlock), and three evenly between. The sweep of every
    call found its failures at the first four calls, or in races that any position with a
    second writer meets; this set keeps the suite's CI time down."""
    between = np.linspace(1, calls, 3).astype(int).tolist()
    return sorted({*range(1, min(calls, 6) + 1), calls, *between})


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("family", ["hyperplanes", "centroids"])
@pytest.mark.parametrize("verb", list(VERBS))
def test_a_fault_at_any_call_leaves_nothing_lost_or_duplicated(redis_url, name, tmp_path, plan, verb, family, mode):
    if mode == "kill" and verb.startswith("a"):
        pytest.skip("a killed process is a killed process: the sync verbs make the same calls")
    counted = setup(redis_url, f"{name}0", family, verb, tmp_path / "0.sqlite3")
    run_once(plan, counted, tmp_path / "0.sqlite3", family, verb, "count", 0)
    calls = plan.calls
    counted.clear()
    assert calls >= 5, plan.names
    faults = 0
    for at in positions(calls):
        began = time.perf_counter()
        path = tmp_path / f"{at}.sqlite3"
        lsh = setup(redis_url, f"{name}{at}", family, verb, path)
        fired, raced = run_once(plan, lsh, path, family, verb, mode, at)
        faults += fired  # a verb may make a few calls fewer from one run to the next (the race it lost, timing)
        try:
            if not raced:
                VERBS[verb](lsh)  # run again, no fault
            check(lsh, verb, raced)
        except AssertionError as failure:
            where = plan.names[at - 1] if len(plan.names) >= at else "?"
            raise AssertionError(f"{mode} at call {at} of {calls} ({where}): {failure}") from failure
        finally:
            lsh.clear()
        if os.environ.get("SWEEP_DEBUG"):
            print(mode, at, calls, plan.names[at - 1 : at], f"{time.perf_counter() - began:.2f} s")
    assert faults >= min(5, len(positions(calls))) - 2, f"only {faults} faults landed"


@pytest.mark.parametrize("family", ["hyperplanes", "centroids"])
def test_any_prefix_of_a_bucket_pipeline_keeps_the_counter_with_the_entries(redis_url, name, tmp_path, family):
    """A client killed while sending a pipeline leaves a prefix of it run: the counter must match what ran."""
    from lshrs.buckets import _Once
    from lshrs.writes import entries

    lsh = setup(redis_url, name, family, "replace", tmp_path / "prefix.sqlite3")
    buckets, family_ = lsh.buckets, lsh.attachment.family
    old = lsh.store.get(OLD, payload=False)
    add = entries(lsh.attachment, family_, OLD, REPLACEMENTS)
    remove = entries(lsh.attachment, family_, old.ids, old.vectors)
    calls, n_remove = buckets._apply_calls(add, remove, _Once(buckets.prefix, buckets.meta_key))
    assert len(calls) >= 3
    stops = {*np.linspace(0, len(calls), 20).astype(int).tolist(), n_remove - 1, n_remove, n_remove + 1, len(calls) - 1}
    try:
        for stop in sorted(stops):
            buckets._run(calls[:stop])  # a prefix ran; the rest never reached the server
            assert buckets.entry_count() == int(buckets.bucket_sizes().sum()), f"after {stop} of {len(calls)} calls"
    finally:
        lsh.clear()
