"""The zero-setup default: LSHRS() starts its own Redis and SQLite under ./lshrs_data."""

import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from servers import wait_until

ROOT = str(Path(__file__).resolve().parents[1])

WRITE = """
import numpy as np
from lshrs import LSHRS
lsh = LSHRS()
lsh.ingest(vectors=np.eye(16)[:10] + 0.01, ids=range(10), texts=[f"doc {i}" for i in range(10)])
print(lsh.query(np.eye(16)[3], top_k=2)[0].text)
"""

READ = """
import numpy as np
from lshrs import LSHRS
lsh = LSHRS()
print(lsh.count(), lsh.query(np.eye(16)[7], top_k=3)[0].text)
"""


def run(code: str, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env["PYTHONPATH"] = ROOT
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_embedded_default_from_a_clean_directory(tmp_path):
    from lshrs import embedded

    try:
        assert run(WRITE, tmp_path) == "doc 3"
        data = tmp_path / "lshrs_data"
        assert (data / "lshrs.sqlite3").exists() and (data / "redis").is_dir()
        assert run(READ, tmp_path) == "10 doc 7"  # a later process reuses the running server
        assert embedded.stop(data)
        assert run(READ, tmp_path) == "10 doc 7"  # restarted from its append-only file
    finally:
        embedded.stop(tmp_path / "lshrs_data")


def test_embedded_binary_is_found():
    from lshrs.embedded import server_binary

    version = subprocess.run([server_binary(), "--version"], capture_output=True, text=True).stdout
    assert "Redis server" in version


def fill(data: Path, keys: int, value_bytes: int) -> None:
    """An embedded server's data of `keys` keys, rewritten into one append-only file, then the server stopped."""
    from lshrs import embedded

    client = embedded.connect(data)
    pipe = client.pipeline(transaction=False)
    for i in range(keys):
        pipe.set(f"k{i}", b"x" * value_bytes)
    pipe.execute()
    client.bgrewriteaof()  # an RDB preamble: the part of the file a key-load-delay slows down
    wait_until(lambda: not client.info("persistence")["aof_rewrite_in_progress"], 30)
    assert embedded.stop(data)
    wait_until(lambda: embedded.server_pid(data / "redis") is None, 10)


def servers_of(redis_dir: Path) -> list[int]:
    """Pids of the Redis servers working in `redis_dir` (a server chdirs to its --dir; its title hides its args)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if (
                proc.name.isdigit()
                and b"redis" in (proc / "cmdline").read_bytes()
                and (proc / "cwd").resolve() == redis_dir
            ):
                found.append(int(proc.name))
        except OSError:
            pass
    return found


def test_a_cold_start_does_not_wait_on_retries(tmp_path, monkeypatch):
    """redis-py's client retries a refused connection with backoff: about 8 s per cold start before."""
    import redis.connection

    from lshrs import embedded

    failed = []
    connect = redis.connection.UnixDomainSocketConnection._connect

    def counted(self):
        try:
            return connect(self)
        except OSError:
            failed.append(1)
            raise

    monkeypatch.setattr(redis.connection.UnixDomainSocketConnection, "_connect", counted)
    data = tmp_path / "lshrs_data"
    try:
        assert embedded.connect(data).ping()
        assert failed == []
        embedded.stop(data)
        wait_until(lambda: embedded.server_pid(data / "redis") is None, 10)
        (data / "redis" / "redis.sock").touch()  # what a SIGKILLed server leaves behind
        assert embedded.connect(data).ping()
        assert len(failed) <= 2  # the leftover socket refuses one probe (two: once more under the start lock)
    finally:
        embedded.stop(data)


def test_a_server_loading_its_data_is_waited_for_not_started_twice(tmp_path):
    """A second server on the same files corrupts them; before, a LOADING reply was taken for a dead server."""
    from lshrs import embedded

    data = (tmp_path / "lshrs_data").resolve()
    redis_dir = data / "redis"
    try:
        fill(data, 4000, 2000)
        slow = [*embedded.server_args(redis_dir, embedded.socket_path(data)), "--key-load-delay", "1000"]
        subprocess.run(slow, check=True)  # about 4 s to load, answering LOADING every 2 MB
        with ThreadPoolExecutor(2) as pool:
            clients = list(pool.map(lambda _: embedded.connect(data), range(2)))
        assert [c.dbsize() for c in clients] == [4000, 4000]
        assert len(servers_of(redis_dir)) == 1
    finally:
        embedded.stop(data)
        for pid in servers_of(redis_dir):  # a second server, had one been started
            os.kill(pid, signal.SIGKILL)


def test_a_killed_server_is_restarted_with_its_data(tmp_path):
    from lshrs import embedded

    data = (tmp_path / "lshrs_data").resolve()
    try:
        fill(data, 100, 10)
        client = embedded.connect(data)
        pid = embedded.server_pid(data / "redis")
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: embedded.server_pid(data / "redis") is None, 10)
        assert (data / "redis" / "redis.pid").exists() and (data / "redis" / "redis.sock").exists()  # left behind
        client = embedded.connect(data)
        assert client.dbsize() == 100
        assert embedded.server_pid(data / "redis") not in (None, pid)
    finally:
        embedded.stop(data)
