"""Faults injected against real servers: drift, concurrent writers, Redis killed mid-build, Postgres down.

The yardstick everywhere is `verify()`: the buckets must equal a fresh
re-hash of the store, with no id missing, stale or repeated.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psycopg
import pytest
import redis
from conftest import clustered
from servers import Postgres, debian_pg_bindir, free_port, started_here, wait_until

from lshrs import LSHRS, MemoryStore, PostgresStore, SQLiteStore, locks, writes
from lshrs.buckets import Buckets


def test_verify_reports_and_repair_fixes_every_kind_of_drift(make_index, tmp_path, name):
    store = SQLiteStore(tmp_path / "docs.sqlite3", table=name)
    lsh = make_index(store=store, batch_size=100)
    vectors = clustered(500, dim=16)
    lsh.ingest(vectors=vectors, ids=np.arange(500))
    healthy = lsh.verify()
    assert healthy["ok"] and healthy["store_rows"] == 500 and healthy["missing_entries"] == 0
    tables = lsh.params["num_tables"]

    store.delete(np.array([1, 2]))  # rows gone behind lshrs' back: their entries are stale
    store.put(np.array([900]), vectors[:1] * -1)  # a row lshrs never indexed: entries missing
    store.put(np.array([7]), vectors[8:9])  # a vector changed in place: 12 stale + 12 missing (or fewer)
    # entries written again behind lshrs' back (index() and ingest() never repeat one): repeated entries
    lsh.buckets.apply(add=writes.entries(lsh.attachment, lsh.hasher, np.array([10, 11]), vectors[[10, 11]]))
    report = lsh.verify()
    assert not report["ok"]
    assert report["stale_entries"] >= 2 * tables and {1, 2} <= set(report["stale_ids"])
    assert report["missing_entries"] >= tables and 900 in report["missing_ids"]
    assert report["repeated_entries"] == 2 * tables and report["repeated_ids"] == [10, 11]

    before = lsh.repair()
    assert before == report
    after = lsh.verify()
    assert after["ok"] and after["found_entries"] == after["expected_entries"] == 499 * tables
    assert lsh.count() == store.count() == 499
    assert lsh.query(vectors[8], top_k=2)[0].id in (7, 8)  # the changed row is findable under its new vector
    assert lsh.query(vectors[0] * -1, top_k=1)[0].id == 900


# -- several writers at once -------------------------------------------------------------


def _writer(redis_url: str, dsn: str, name: str, seed: int, rounds: int) -> None:
    """Random ingests, upserts and deletes over ids that the other writers also touch."""
    lsh = LSHRS(name=name, redis_url=redis_url, store=PostgresStore(dsn, table=name))
    rng = np.random.default_rng(seed)
    for _ in range(rounds):
        ids = np.unique(rng.integers(0, 60, rng.integers(1, 12)))
        if rng.random() < 0.3:
            lsh.delete(ids)
        else:
            lsh.ingest(vectors=rng.standard_normal((len(ids), 16)).astype(np.float32), ids=ids)
    lsh.close()


def test_concurrent_writers_leave_buckets_equal_to_the_store(redis_url, postgres_dsn, name):
    LSHRS(name=name, redis_url=redis_url, store=PostgresStore(postgres_dsn, table=name), dim=16).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(redis_url, postgres_dsn, name, seed, 40)) for seed in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    lsh = LSHRS(name=name, redis_url=redis_url, store=PostgresStore(postgres_dsn, table=name))
    report = lsh.verify()
    assert report["ok"], report
    assert lsh.count() == lsh.store.count() > 0
    lsh.clear()


# -- Redis killed in the middle of index() -----------------------------------------------


class PersistentRedis:
    """A redis-server with an fsync-always append-only file, which can be killed and restarted on its data."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="lshrs-aof-")
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.start()

    def start(self) -> None:
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir, "--save", ""]
        args += ["--appendonly", "yes", "--appendfsync", "always"]
        binary = shutil.which("redis-server") or "redis-server"
        self.proc = subprocess.Popen([binary, *args], stdout=subprocess.DEVNULL)
        if not started_here(self.proc, self.url):  # a restart keeps its port: it cannot pick another
            raise RuntimeError(f"port {self.port} was taken by another server before this one could bind it")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


class SlowScan(MemoryStore):
    """A MemoryStore whose scan takes 20 ms a batch, so a kill can land in the middle of a build."""

    def scan(self, **kwargs):
        for rows in super().scan(**kwargs):
            time.sleep(0.02)
            yield rows


@pytest.mark.parametrize("family, tables", [("hyperplanes", 16), ("centroids", 1)])
def test_redis_killed_mid_index_then_rerun_indexes_every_row_once(monkeypatch, family, tables):
    import lshrs.build

    # write the buckets every 200 rows (a scanned batch), so that the kill lands in the middle of the build
    monkeypatch.setattr(lshrs.build, "FLUSH_ENTRIES", tables * 200)
    server = PersistentRedis()
    store = SlowScan()
    vectors = clustered(6000, dim=32)
    store.put(np.arange(6000), vectors)
    try:
        lsh = LSHRS(name="killed", redis_url=server.url, store=store, batch_size=200, family=family)
        failure: list[BaseException] = []
        build = threading.Thread(target=lambda: _capture(failure, lsh.index))
        build.start()
        client = redis.Redis.from_url(server.url)
        wait_until(lambda: int(client.hget("lshrs:killed:meta", "indexed_through") or 0) > 1000, timeout=60)
        server.kill()
        build.join(60)
        assert failure and isinstance(failure[0], redis.ConnectionError)

        server.start()
        lsh = LSHRS(name="killed", redis_url=server.url, store=store, batch_size=200)
        assert 0 < lsh.count() < 6000  # what the killed build had written survived in the AOF
        lsh.index()
        report = lsh.verify()
        assert report["ok"] and report["repeated_entries"] == 0, report
        assert lsh.count() == 6000
    finally:
        server.stop()


def _capture(failure: list[BaseException], fn) -> None:
    try:
        fn()
    except BaseException as exc:  # the thread's exception, for the test to inspect
        failure.append(exc)


# -- Postgres unreachable ------------------------------------------------------------------


def test_postgres_down_gives_a_clear_error_and_no_bucket_entries(redis_url, name):
    pg = Postgres(debian_pg_bindir())
    pg.start()
    try:
        lsh = LSHRS(name=name, redis_url=redis_url, store=PostgresStore(pg.dsn, table=name))
        lsh.ingest(vectors=clustered(100, dim=8), ids=np.arange(100))  # enough rows for the centroids to train
        _pg_ctl(pg, "-m", "immediate", "stop")
        with pytest.raises(psycopg.OperationalError):
            lsh.ingest(vectors=clustered(5, dim=8, seed=3), ids=np.arange(100, 105))
        with pytest.raises(psycopg.OperationalError):
            lsh.query(np.ones(8), top_k=3)
        indexed = {int(i) for _, _, ids in lsh.buckets.every_bucket() for i in ids}
        assert indexed == set(range(100))  # nothing for rows that never reached the store
        assert lsh.count() == 100

        _pg_start(pg)
        # the same instance, after the restart: its store connects again by itself
        assert len(lsh.query(np.ones(8), top_k=3)) == 3
        lsh.ingest(vectors=clustered(2, dim=8, seed=4), ids=[200, 201])
        assert lsh.delete([200, 201]) == 2 and lsh.store.count() == 100
        _pg_ctl(pg, "-m", "fast", "stop")  # a restart between two calls: the next one reconnects
        _pg_start(pg)
        assert lsh.store.count() == 100 and len(lsh.get([1, 2])) == 2
        again = LSHRS(name=name, redis_url=redis_url, store=PostgresStore(pg.dsn, table=name))
        assert again.verify()["ok"]
        again.ingest(vectors=clustered(5, dim=8, seed=3), ids=np.arange(100, 105))
        assert again.count() == again.store.count() == 105
        again.clear()
    finally:
        pg.stop()


def _pg_start(pg: Postgres) -> None:
    """Start the stopped server again on its data, port and socket (its log to a file, not to our pipe)."""
    _pg_ctl(pg, "-w", "-o", f"-p {pg.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={pg.root}",
            "-l", str(Path(pg.root) / "log"), "start")  # fmt: skip


def _pg_ctl(pg: Postgres, *args: str) -> None:
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run([*prefix, str(pg.bindir / "pg_ctl"), "-D", str(pg.data), *args], check=True, capture_output=True)


# -- Ctrl-C between the store write and the bucket write ------------------------------------------


class InterruptingStore(MemoryStore):
    """A real MemoryStore whose put() is followed by a Ctrl-C to this process, before the buckets move."""

    def put(self, *args, **kwargs):
        super().put(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_during_a_write_is_raised_after_the_buckets_caught_up(make_index):
    store = InterruptingStore()
    lsh = make_index(store=store)
    with pytest.raises(KeyboardInterrupt):
        lsh.ingest(vectors=clustered(30, dim=8), ids=np.arange(30))
    assert store.count() == 30 and lsh.count() == 30  # the interrupt waited for the bucket write
    assert lsh.verify()["ok"]
    with pytest.raises(KeyboardInterrupt):  # and the writer lock was released: the next write proceeds
        lsh.ingest(vectors=clustered(5, dim=8, seed=2), ids=np.arange(30, 35))
    assert lsh.count() == 35


def test_ctrl_c_handler_comes_back_when_redis_fails_mid_write(make_index, monkeypatch):
    """A write that fails with Redis unreachable (so the unlock fails too) must not leave
    lshrs' deferring SIGINT handler installed: this process would swallow every later Ctrl-C."""

    lsh = make_index()
    lsh.ingest(vectors=np.eye(4, 8, dtype=np.float32))
    before = signal.getsignal(signal.SIGINT)

    def unreachable(*args, **kwargs):
        raise redis.ConnectionError("Redis went away")

    monkeypatch.setattr(Buckets, "apply", unreachable)
    monkeypatch.setattr(Buckets, "unlock", unreachable)
    with pytest.raises(redis.ConnectionError):
        lsh.ingest(vectors=np.eye(4, 8, k=2, dtype=np.float32))
    assert signal.getsignal(signal.SIGINT) is before
    monkeypatch.undo()
    monkeypatch.setattr(Buckets, "unlock", unreachable)  # the writes land, then the unlock fails
    with pytest.raises(redis.ConnectionError):
        lsh.ingest(vectors=np.eye(4, 8, k=3, dtype=np.float32))
    assert signal.getsignal(signal.SIGINT) is before


# -- replies lost after the server ran a bucket write --------------------------------------


@pytest.fixture
def lost_replies(monkeypatch):
    """Drop the connection after the server ran a bucket-write pipeline, before the client read its replies.

    redis-py's default retry then re-sends the whole pipeline on a new
    connection, which is what a dropped connection or a Redis that restarts
    within its retry window does to a writer. `state["left"]` pipelines lose
    their replies; `state["dropped"]` counts them.
    """

    state = {"left": 0, "dropped": 0, "armed": False}
    run_once, read = Buckets._run_once, redis.connection.Connection.read_response

    def armed_run(self, calls):
        state["armed"] = state["left"] > 0 and any(c[0].startswith(("append", "remove")) for c in calls)
        try:
            return run_once(self, calls)
        finally:
            state["armed"] = False

    def lossy_read(self, *args, **kwargs):
        reply = read(self, *args, **kwargs)  # the server ran the first call at least
        if state["armed"]:
            state["armed"], state["left"], state["dropped"] = False, state["left"] - 1, state["dropped"] + 1
            time.sleep(0.05)  # and, by now, the rest of the pipeline
            self.disconnect()
            raise redis.ConnectionError("connection dropped by the test")
        return reply

    monkeypatch.setattr(Buckets, "_run_once", armed_run)
    monkeypatch.setattr(redis.connection.Connection, "read_response", lossy_read)
    return state


def test_a_query_read_survives_dropped_connections(redis_url, redis_client, name, monkeypatch):
    """The bucket read (one packed MGET + HMGET exchange): killed between queries, or dropped half way
    through a reply, it is re-sent on a new connection and answers the same; with no retries left, or
    interrupted between its two replies, it raises, and the next query still answers (no connection
    goes back to the pool with a reply unread)."""
    vectors = clustered(3_000, dim=32, seed=3)
    store = MemoryStore()
    store.put(np.arange(len(vectors)), vectors)
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    own = redis.Redis.from_url(redis_url, retry=Retry(NoBackoff(), 3))  # from_url alone does not retry
    lsh = LSHRS(name=name, redis=own, store=store, family="centroids", exact_below=0)
    try:
        lsh.index()
        queries = vectors[:5] + 0.01
        expected = [[h.id for h in lsh.query(q, top_k=10)] for q in queries]
        assert redis_client.client_kill_filter(_type="normal", skipme=True) >= 1  # lsh's pooled connection
        assert [[h.id for h in lsh.query(q, top_k=10)] for q in queries] == expected

        read, state = redis.connection.Connection.read_response, {"drops": 0}

        def dropping(self, *args, **kwargs):
            if state["drops"]:  # the first reply of the exchange arrived only in part
                state["drops"] -= 1
                self.disconnect()
                raise redis.ConnectionError("connection dropped by the test")
            return read(self, *args, **kwargs)

        monkeypatch.setattr(redis.connection.Connection, "read_response", dropping)
        state["drops"] = 1
        assert [h.id for h in lsh.query(queries[0], top_k=10)] == expected[0]
        assert state["drops"] == 0
        state["drops"] = 100  # more than the client's 3 retries
        with pytest.raises(redis.ConnectionError):
            lsh.query(queries[1], top_k=10)
        state["drops"] = 0
        assert [[h.id for h in lsh.query(q, top_k=10)] for q in queries] == expected

        def interrupted(self, *args, **kwargs):  # after the first reply, before the second was read
            read(self, *args, **kwargs)  # the first reply arrives
            monkeypatch.setattr(redis.connection.Connection, "read_response", read)
            raise KeyboardInterrupt

        monkeypatch.setattr(redis.connection.Connection, "read_response", interrupted)
        with pytest.raises(KeyboardInterrupt):
            lsh.query(queries[2], top_k=10)
        assert [[h.id for h in lsh.query(q, top_k=10)] for q in queries] == expected  # no stale reply read
    finally:
        lsh.clear()
        own.close()


@pytest.mark.parametrize("family", ["centroids", "hyperplanes"])
def test_a_resent_bucket_pipeline_writes_each_entry_once(redis_url, name, lost_replies, family):
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    vectors = clustered(3_000, dim=16, seed=3)
    store = MemoryStore()
    store.put(np.arange(2_000), vectors[:2_000])
    # redis.Redis(host=..., port=...) retries 10 times by default; from_url, as the fixtures use it, does not
    client = redis.Redis.from_url(redis_url, retry=Retry(NoBackoff(), 3))
    assert client.connection_pool.get_connection().retry.get_retries() == 3
    lsh = LSHRS(name=name, redis=client, store=store, family=family, batch_size=500)
    lost_replies["left"] = 1
    assert lsh.index() == 2_000  # a bulk build, one of its pipelines re-sent
    lost_replies["left"] = 1
    lsh.ingest(vectors=vectors[2_000:], ids=np.arange(2_000, 3_000))  # new rows
    lost_replies["left"] = 1
    lsh.ingest(vectors=vectors[:100] * -1, ids=np.arange(100))  # replacements: a removal and an append re-sent
    lost_replies["left"] = 1
    assert lsh.delete(np.arange(100, 200)) == 100
    assert lost_replies["dropped"] == 4
    report = lsh.verify()
    assert report["ok"], report
    assert lsh.count() == 2_900 == report["store_rows"]  # the entry counter was not counted twice either
    hits = lsh.query(vectors[150], top_k=5, rerank=False)
    assert all(not 100 <= h.id < 200 for h in hits)
    lsh.clear()
    lsh.close()


@pytest.mark.parametrize("family", ["centroids", "hyperplanes"])
def test_a_first_build_that_died_mid_pipeline_is_finished_without_repeats(make_index, monkeypatch, family):
    """The server ran the first calls of the first write pipeline, then the writer died (before any checkpoint)."""

    vectors = clustered(2_000, dim=16, seed=4)
    store = MemoryStore()
    store.put(np.arange(2_000), vectors)
    lsh = make_index(store=store, family=family)
    run_once = Buckets._run_once

    def dies_half_way(self, calls):
        if any(c[0] in ("append", "append_packed") for c in calls):
            run_once(self, calls[: max(1, len(calls) // 2)])
            raise redis.ConnectionError("the writer died in the middle of a pipeline")
        return run_once(self, calls)

    monkeypatch.setattr(Buckets, "_run_once", dies_half_way)
    with pytest.raises(redis.ConnectionError):
        lsh.index()
    monkeypatch.setattr(Buckets, "_run_once", run_once)
    assert lsh.buckets.bucket_sizes().sum() > 0 and lsh.buckets.read_meta().get(b"indexed_through") is None
    again = make_index(store=store)  # the rerun, as a new process would make it
    assert again.index() == 2_000
    report = again.verify()
    assert report["ok"], report
    assert again.count() == 2_000


class ScanHook(MemoryStore):
    """A MemoryStore that runs `hook` once, right after a build read its first page.

    That is when the scan asks for the next page: a scan read to its end
    resumes after the first page, a build reading page by page starts a scan
    after the first page's last id.
    """

    hook = None

    def _run_hook(self) -> None:
        hook, self.hook = self.hook, None
        if hook is not None:
            hook()

    def scan(self, **kwargs):
        if kwargs.get("after") is not None:
            self._run_hook()
        for rows in super().scan(**kwargs):
            yield rows
            self._run_hook()


@pytest.mark.parametrize("family", ["centroids", "hyperplanes"])
def test_writers_during_index_leave_no_stale_or_repeated_entries(make_index, family):
    """A delete, a replace and a new row land between the build's read of rows and its write of their entries."""
    vectors = clustered(3_001, dim=16, seed=5)
    store = ScanHook()
    store.put(np.arange(3_000), vectors[:3_000])
    builder = make_index(store=store, family=family, batch_size=500)
    builder.index()  # trains a centroid index: the rebuild below only scans
    other = make_index(store=store)  # a second writer on the same index and table

    def writes() -> None:
        assert other.delete([5]) == 1  # read by the build's first page
        other.ingest(vectors=-vectors[6:7], ids=[6])  # read by it, replaced
        other.ingest(vectors=vectors[3_000:], ids=[3_000])  # not read yet: the build's scan reaches it later

    writer = threading.Thread(target=writes)
    # Starts right after the build read its first page. Without the build's lease the writes finish at
    # once; with it they wait for the chunk, so the hook gives up waiting after a second.
    store.hook = lambda: (writer.start(), writer.join(timeout=1.0))
    builder.index(rebuild=True)
    writer.join()
    report = builder.verify()
    assert report["ok"], report
    assert builder.count() == 3_000 == report["store_rows"]
    assert 5 not in {h.id for h in builder.query(vectors[5], top_k=10, rerank=False)}
    best = builder.query(-vectors[6], top_k=1)[0]
    assert best.id == 6 and best.score == pytest.approx(1.0, abs=1e-5)


def test_a_build_lets_a_waiting_writer_in_between_chunks(make_index, monkeypatch):
    monkeypatch.setattr("lshrs.build.FLUSH_ROWS", 500)  # many chunks, each under a lease of every id
    vectors = clustered(20_000, dim=16, seed=6)
    store = SlowScan()
    store.put(np.arange(20_000), vectors)
    builder = make_index(store=store, family="hyperplanes", batch_size=500)
    other = make_index(store=store)
    done = []
    writer = threading.Thread(target=lambda: done.append(other.delete(list(range(0, 20_000, 1_000)))))
    build = threading.Thread(target=builder.index)
    build.start()
    time.sleep(0.2)
    writer.start()
    writer.join(timeout=60)
    assert done == [20] and build.is_alive()  # the writer got in while the build was still running
    build.join()
    assert builder.verify()["ok"] and builder.count() == 19_980


class SlowStore(MemoryStore):
    """A MemoryStore whose get and put each take `pause` seconds."""

    def __init__(self, pause: float) -> None:
        super().__init__()
        self.pause = pause

    def get(self, *args, **kwargs):
        time.sleep(self.pause)
        return super().get(*args, **kwargs)

    def put(self, *args, **kwargs):
        time.sleep(self.pause)
        return super().put(*args, **kwargs)


@pytest.mark.parametrize("verb", ["ingest", "aingest"])
def test_a_write_longer_than_its_lease_keeps_other_writers_out(make_index, monkeypatch, redis_client, name, verb):
    """The lease is renewed while the writer runs: a second writer stays out for the whole write."""
    monkeypatch.setattr(locks, "LOCK_TTL_MS", 900)
    lsh = make_index(store=SlowStore(0.7), family="hyperplanes", exact_below=0)
    ids = np.arange(50)
    stripes = np.unique(ids % locks.LOCK_STRIPES).tolist()
    taken = []

    def second_writer():
        time.sleep(1.3)  # get and put took 1.4 s of the write: past the 0.9 s lease, not past a renewed one
        taken.append(lsh.buckets.lock(stripes, "second", 900))

    probe = threading.Thread(target=second_writer)
    probe.start()
    vectors = clustered(50, dim=8)
    if verb == "ingest":
        lsh.ingest(vectors=vectors, ids=ids)
    else:
        asyncio.run(lsh.aingest(vectors=vectors, ids=ids))
    probe.join()
    assert taken == [False]
    assert redis_client.hkeys(f"lshrs:{name}:locks") in ([], [b"waiting"])  # released at the end, heartbeat gone
    assert lsh.verify()["ok"]


class LeaseThief(SlowStore):
    """Its put lets the writer's lease lapse and hands the stripes to another writer, as a stalled process would."""

    def __init__(self, client, name) -> None:
        super().__init__(0.0)
        self.client, self.name = client, name

    def put(self, *args, **kwargs):
        self.client.delete(f"lshrs:{self.name}:locks")
        ids = np.asarray(args[0])
        Buckets(self.client, self.name).lock(np.unique(ids % locks.LOCK_STRIPES).tolist(), "thief", 60_000)
        time.sleep(0.5)  # a heartbeat comes meanwhile
        return super().put(*args, **kwargs)


def test_a_writer_whose_lease_was_taken_is_told(make_index, monkeypatch, redis_client, name):
    monkeypatch.setattr(locks, "LOCK_TTL_MS", 900)
    lsh = make_index(store=LeaseThief(redis_client, name), family="hyperplanes", exact_below=0)
    with pytest.raises(TimeoutError, match="another writer took"):
        lsh.ingest(vectors=clustered(20, dim=8), ids=np.arange(20))


async def test_a_heartbeat_whose_cancellation_is_swallowed_still_ends(make_index, monkeypatch):
    """redis.asyncio can swallow a cancellation that lands inside a command; the heartbeat must end anyway."""
    lsh = make_index(family="hyperplanes")
    lsh.ingest(vectors=clustered(20, dim=8), ids=np.arange(20))
    renew = Buckets.arenew

    async def swallowing(self, *args):
        try:
            await asyncio.sleep(0.2)  # a command in flight when the cancellation comes
        except asyncio.CancelledError:
            pass  # as a client that turns it into a reconnect would
        return await renew(self, *args)

    monkeypatch.setattr(Buckets, "arenew", swallowing)
    beats = locks.Heartbeats(lsh.buckets)
    assert await lsh.buckets.alock([1, 2], "writer", 300)
    beat = await beats.akeep([1, 2], "writer", 300)
    await asyncio.sleep(0.15)  # the first renewal is in flight
    ending = asyncio.ensure_future(beats.aend(beat))
    done, _ = await asyncio.wait({ending}, timeout=3)
    assert ending in done  # before: the heartbeat ran on, and aend (with the writer's ids) waited for good
    await lsh.buckets.aunlock([1, 2], "writer")


def test_a_renewal_never_takes_back_released_stripes(make_index, redis_client, name):
    """A heartbeat's renewal that lands after its writer's unlock must not hold the ids again."""
    lsh = make_index(family="hyperplanes")
    lsh.ingest(vectors=clustered(20, dim=8), ids=np.arange(20))
    assert lsh.buckets.lock([7, 8], "first", 60_000)
    assert lsh.buckets.renew([7, 8], "first", 60_000)
    lsh.buckets.unlock([7, 8], "first")
    assert not lsh.buckets.renew([7, 8], "first", 60_000)  # too late: nothing is taken
    assert lsh.buckets.lock([7, 8], "second", 60_000)
    assert not lsh.buckets.renew([7, 8], "first", 60_000)  # another writer's now
    lsh.buckets.unlock([7, 8], "second")
