"""`LSHRS`: validate -> hash -> buckets (Redis) -> store -> rerank."""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from lshrs import audit, build, connection, embedded, filters, inputs, steps
from lshrs import tune as tuning
from lshrs.buckets import FORMAT_VERSION, Buckets, Layout, server_layout
from lshrs.embeddings import Embedder, make_embedder
from lshrs.hashing import Hasher, make_planes
from lshrs.search import Hit, Pages, Request, query_steps
from lshrs.search import candidates as search_candidates
from lshrs.sketch import DEFAULT_CAPACITY as DEFAULT_SKETCH_CAPACITY
from lshrs.sketch import SketchCache
from lshrs.steps import Steps, call
from lshrs.stores.base import Metadata, Rows, Store

if TYPE_CHECKING:
    from lshrs.tune import TuneResult

log = logging.getLogger("lshrs")
T = TypeVar("T")

# Defaults from benchmarks/compare.py on 121,900 real MiniLM embeddings
# (Wikipedia passages + WordNet glosses; benchmarks/results/compare.md):
# L=16, K=14, 128 probes reached recall@10 0.973 reranking 19% of the corpus
# (p50 33 ms on the 2-core bench machine; 0.966 reranking 0.96% at 21 ms
# with top_p=0.05), at 104 Redis bytes per vector: the fastest setting at
# recall >= 0.95 with 16 tables when every candidate is reranked. L=24, K=14,
# 64 probes is faster but costs 155 B/vector. The earlier L=12, K=14, 12
# probes (tuned on clustered synthetic vectors) reached only 0.52 there.
# `LSHRS.tune` fits a user's own data and size.
DEFAULT_NUM_TABLES = 16
DEFAULT_NUM_BITS = 14
DEFAULT_NUM_PROBES = 128
DEFAULT_SEED = 0
DEFAULT_ID_BYTES = 4
DEFAULT_BATCH_SIZE = 10_000
# Below this many indexed vectors a query scans the store exactly: that is
# both faster than probing and the only way tiny indexes answer top_k fully.
DEFAULT_EXACT_BELOW = 2_000

# Writers of the same ids take turns: ingest and delete hold a lock on the
# stripes (id mod LOCK_STRIPES) of their batch while they read the old rows,
# write the store and move the buckets; without it two upserts of one id can
# leave the buckets of the loser's vector behind. A crashed writer's stripes
# free themselves after LOCK_TTL_MS; a writer gives up after LOCK_WAIT_S.
LOCK_STRIPES = 4096
LOCK_TTL_MS = 60_000
LOCK_WAIT_S = 120.0

_HASH_PARAMS = ("dim", "num_tables", "num_bits", "seed", "id_bytes")
# meta fields fixed at creation besides the parameters (kept across rebuilds)
_LAYOUT_FIELDS = ("format", "planes", "group_bits", "small_max")
# meta fields that are settings, not definition: kept across rebuilds
_SETTINGS = ("next_id", "num_probes")


class LSHRS:
    """A locality-sensitive-hashing index: buckets in Redis, documents in a store.

    All arguments are keyword-only and optional. Parameters that define the
    hash functions (dim, num_tables, num_bits, seed, id_bytes) are saved in
    Redis under `name`; a later `LSHRS(name=...)` on the same Redis reads them
    back, and passing a conflicting value raises ValueError.

    Args:
        name: index name, the Redis key prefix ``lshrs:{name}:``.
        dim: vector dimension; inferred from the store or the first vectors.
        num_tables: hash tables (L). More tables, more recall and memory.
        num_bits: bits per table (K). More bits, smaller buckets.
        num_probes: buckets visited per table at query time (multi-probe);
            default: the value `tune(apply=True)` saved with the index, else 128.
        seed: seed of the hyperplanes (drawn once, then stored in Redis).
        id_bytes: width of an id in the buckets: 4 (default, ids below 2**31) or 8 (any int64 id).
        redis: an existing redis-py client (``Redis`` or ``RedisCluster``).
        async_redis: a redis.asyncio client for the ``a``-prefixed verbs;
            default: one made like the sync client, per event loop.
        redis_url: used when `redis` is not given; else ``REDIS_URL``; else an
            embedded server under `data_dir`.
        store: where documents live; default an SQLite file under `data_dir`.
        data_dir: directory of the embedded Redis and SQLite data.
        embedding_model: sentence-transformers name or model, or any callable
            texts -> (n, d) array; used for texts given to ingest and query.
        batch_size: rows per batch in index() and ingest().
        show_progress: show a progress bar in index().
        exact_below: scan the store exactly while the index holds fewer vectors.
        sketch_cache: how many vectors' 256-bit sketches this process keeps
            (about 40 bytes each) to choose what a `top_p` query reranks;
            0 ranks by collision count instead. See `warm()`.
    """

    def __init__(
        self,
        *,
        name: str = "default",
        dim: int | None = None,
        num_tables: int | None = None,
        num_bits: int | None = None,
        num_probes: int | None = None,
        seed: int | None = None,
        id_bytes: int | None = None,
        redis: Any = None,
        redis_url: str | None = None,
        async_redis: Any = None,
        store: Store | None = None,
        data_dir: str | Path = embedded.DEFAULT_DATA_DIR,
        embedding_model: str | Embedder | Any | None = None,
        embed_batch_size: int = 64,
        batch_size: int = DEFAULT_BATCH_SIZE,
        show_progress: bool = False,
        exact_below: int = DEFAULT_EXACT_BELOW,
        sketch_cache: int = DEFAULT_SKETCH_CAPACITY,
    ) -> None:
        self.name = inputs.check_name(name)
        self._probes_given = num_probes is not None
        self.num_probes = DEFAULT_NUM_PROBES if num_probes is None else _positive("num_probes", num_probes)
        self.batch_size = _positive("batch_size", batch_size)
        self.show_progress = show_progress
        self.exact_below = exact_below
        self.sketch_capacity = _non_negative("sketch_cache", sketch_cache)
        self.sketches: SketchCache | None = None
        self.redis, self._owns_client = connection.connect(redis, redis_url, data_dir)
        self._async_redis = async_redis
        self._pages: Pages | None = None
        if store is None:
            from lshrs.stores.sqlite import SQLiteStore

            store = SQLiteStore(Path(data_dir) / "lshrs.sqlite3", table=default_table(name))
        self.store: Store = store
        self._embedding_model = embedding_model
        self._embed_batch_size = embed_batch_size
        self._embedder: Embedder | None = None
        requested = {"dim": dim, "num_tables": num_tables, "num_bits": num_bits, "seed": seed, "id_bytes": id_bytes}
        self._requested = {k: v for k, v in requested.items() if v is not None}
        _check_params(self._requested)
        self.buckets = Buckets(self.redis, self.name)
        self.buckets.bind_async(self._async_client)
        self.hasher: Hasher | None = None
        self.params: dict[str, int] = {}
        self._attach()

    # -- parameters and attach -------------------------------------------

    def _attach(self) -> bool:
        """Load the index definition from Redis, or create it once dim is known."""
        meta = self.buckets.read_meta()
        if meta:
            self._load(meta)
            return True
        dim = self._requested.get("dim") or self.store.dim()
        if dim:
            self._create(int(dim))
            return True
        return False

    def _load(self, meta: dict[str, bytes]) -> None:
        version = int(meta.get("format", b"0"))
        if version != FORMAT_VERSION:
            raise ValueError(f"index {self.name!r}: format version {version}, this lshrs reads {FORMAT_VERSION}")
        params = {k: int(meta[k]) for k in _HASH_PARAMS}
        conflicts = {k: (v, params[k]) for k, v in self._requested.items() if params[k] != v}
        if conflicts:
            detail = ", ".join(f"{k}={got} (index has {have})" for k, (got, have) in conflicts.items())
            raise ValueError(f"index {self.name!r} exists with other parameters: {detail}")
        planes = np.frombuffer(meta["planes"], dtype="<f4").reshape(params["dim"], -1).astype(np.float32)
        self.params = params
        if not self._probes_given and "num_probes" in meta:
            self.num_probes = int(meta["num_probes"])
        self.buckets.layout = Layout(
            id_bytes=params["id_bytes"],
            num_bits=params["num_bits"],
            group_bits=int(meta["group_bits"]),
            small_max=int(meta["small_max"]),
        )
        self.hasher = Hasher(planes, params["num_tables"], params["num_bits"])
        if self.sketch_capacity and (self.sketches is None or self.sketches.dim != params["dim"]):
            self.sketches = SketchCache(params["dim"], capacity=self.sketch_capacity)

    def _create(self, dim: int) -> None:
        fields = self._definition(dim)
        if self.buckets.create_meta(fields):
            log.info("created index %r: %s", self.name, {k: fields[k] for k in _HASH_PARAMS})
        self._load(self.buckets.read_meta())

    def _definition(self, dim: int) -> dict[str, Any]:
        """The meta fields of a new index: the requested parameters (defaults for the rest) and fresh planes."""
        params = {
            "dim": dim,
            "num_tables": self._requested.get("num_tables", DEFAULT_NUM_TABLES),
            "num_bits": self._requested.get("num_bits", DEFAULT_NUM_BITS),
            "seed": self._requested.get("seed", DEFAULT_SEED),
            "id_bytes": self._requested.get("id_bytes", DEFAULT_ID_BYTES),
        }
        planes = make_planes(dim, params["num_tables"], params["num_bits"], params["seed"])
        group_bits, small_max = server_layout(self.redis)
        return {
            **params,
            "format": FORMAT_VERSION,
            "planes": planes.astype("<f4").tobytes(),
            "group_bits": min(group_bits, params["num_bits"]),
            "small_max": small_max,
        }

    def _redefine(self, dim: int, num_tables: int, num_bits: int, num_probes: int) -> None:
        """Give the index new tables, bits and probes; `index()` then rebuilds the buckets from the store.

        The meta hash is swapped in one step and marked ``build=redefine``:
        an `index()` that finds the mark drops the old buckets before it
        builds, so a rebuild interrupted at any point is finished by running
        `index()` again. Seed, id width and the id counter carry over.
        """
        old = self.buckets.read_meta()
        self._requested.update({k: v for k, v in self.params.items() if k in _HASH_PARAMS})
        self._requested.update(dim=dim, num_tables=num_tables, num_bits=num_bits)
        fields = {**self._definition(dim), "num_probes": num_probes, "build": build.REDEFINE}
        if "next_id" in old:
            fields["next_id"] = old["next_id"]
        self.buckets.replace_meta(fields)
        self._probes_given = False
        self._load(self.buckets.read_meta())

    def _ready(self, dim: int) -> Hasher:
        """The hasher, creating the index from the first vectors' dimension if needed."""
        if self.hasher is None and not self._attach():
            self._create(dim)
        assert self.hasher is not None
        return self.hasher

    @property
    def dim(self) -> int | None:
        return self.params.get("dim")

    @property
    def id_bytes(self) -> int:
        """Width of an id in the buckets: the index's, or the one it will be created with."""
        return self.params.get("id_bytes") or self._requested.get("id_bytes", DEFAULT_ID_BYTES)

    def _ids(self, ids: Any, **kwargs: Any) -> NDArray[np.int64]:
        return inputs.as_ids(ids, id_bytes=self.id_bytes, **kwargs)

    # -- embedding ---------------------------------------------------------

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed texts with the configured model (loaded on first use)."""
        if self._embedder is None:
            self._embedder = make_embedder(self._embedding_model, self._embed_batch_size)
        return inputs.as_vectors(self._embedder(list(texts)), dim=self.dim, name="embeddings")

    # -- writes ------------------------------------------------------------

    def ingest(
        self,
        texts: Sequence[str] | None = None,
        vectors: Any = None,
        *,
        ids: Any = None,
        metadata: Sequence[Metadata | None] | None = None,
    ) -> NDArray[np.int64]:
        """Add or replace documents: the store first, then the buckets.

        Give `texts` (embedded with the configured model), `vectors`, or both
        (vectors used, texts stored). Re-ingesting an id replaces its row and
        moves it out of its old buckets. Without `ids`, fresh ones are drawn.

        Returns:
            The ids written, in input order.
        """
        return steps.run(self._ingest_steps(texts, vectors, ids, metadata), self._targets())

    async def aingest(
        self,
        texts: Sequence[str] | None = None,
        vectors: Any = None,
        *,
        ids: Any = None,
        metadata: Sequence[Metadata | None] | None = None,
    ) -> NDArray[np.int64]:
        """`ingest` without blocking the event loop (redis.asyncio; async psycopg for Postgres)."""
        return await steps.arun(self._ingest_steps(texts, vectors, ids, metadata), self._targets())

    def _ingest_steps(self, texts: Any, vectors: Any, ids: Any, metadata: Any) -> Steps[NDArray[np.int64]]:
        if texts is None and vectors is None:
            raise ValueError("ingest: give texts, vectors, or both")
        text_list = inputs.as_texts(texts) if texts is not None else None
        if vectors is None:
            vectors = yield call("lsh", "embed", text_list)
        batch = self._validate_batch(text_list, vectors, ids, metadata)
        refuses = getattr(self.store, "check", None)  # what only the store knows it cannot hold
        if refuses is not None:
            refuses(batch.texts, batch.metadata)
        hasher = self.hasher or (yield call("lsh", "_ready", batch.vectors.shape[1]))
        written = []
        for lo in range(0, len(batch), self.batch_size):
            part = _slice(batch, lo, lo + self.batch_size)
            if ids is None:
                part.ids = yield from self._new_ids(len(part))
            yield from self._locked(part.ids, self._write_steps(part, hasher))
            written.append(part.ids)
        return np.concatenate(written)

    def _write_steps(self, part: Rows, hasher: Hasher) -> Steps[None]:
        """Store first, then buckets: the old rows' buckets are found by re-hashing their stored vectors."""
        old = yield call("store", "get", part.ids, payload=False)
        yield call("store", "put", part.ids, part.vectors, part.texts, part.metadata)
        yield call(
            "buckets",
            "apply",
            add=self.buckets.group(part.ids, hasher.codes(part.vectors)),
            remove=self.buckets.group(old.ids, hasher.codes(old.vectors)) if len(old) else None,
        )

    def _locked(self, ids: NDArray[np.int64], body: Steps[T]) -> Steps[T]:
        """Run `body` holding the writer lock of every stripe of `ids` (see LOCK_STRIPES)."""
        stripes = np.unique(ids % LOCK_STRIPES).tolist()
        token = uuid.uuid4().hex
        waited, pause = 0.0, 0.005
        while not (yield call("buckets", "lock", stripes, token, LOCK_TTL_MS)):
            if waited > LOCK_WAIT_S:
                raise TimeoutError(f"index {self.name!r}: another writer held these ids for {waited:.0f} s")
            yield call("clock", "sleep", pause)
            waited, pause = waited + pause, min(pause * 2, 0.25)
        try:
            yield call("interrupts", "hold")
            result = yield from body
        except GeneratorExit:
            raise  # the driver was interrupted and cannot run a step: the stripes expire after LOCK_TTL_MS
        except BaseException:
            try:
                yield call("buckets", "unlock", stripes, token)
            except Exception:  # Redis gone too: the stripes expire after LOCK_TTL_MS; the first error matters
                log.warning("index %r: could not release the writer lock", self.name, exc_info=True)
            yield call("interrupts", "release")
            raise
        # The handler must come back even when the unlock fails (Redis gone after the writes):
        # otherwise this process would swallow every later Ctrl-C.
        try:
            yield call("buckets", "unlock", stripes, token)
        finally:
            yield call("interrupts", "release")  # raises a Ctrl-C that came meanwhile, now that the writes are whole
        return result

    def _validate_batch(self, texts: list[str] | None, vectors: Any, ids: Any, metadata: Any) -> Rows:
        vecs = inputs.as_vectors(vectors, dim=self.dim)
        n = len(vecs)
        if texts is not None:
            inputs.check_length("texts", len(texts), n)
        meta = inputs.as_metadata(metadata, n)
        id_arr = self._ids(ids) if ids is not None else np.zeros(n, np.int64)
        inputs.check_length("ids", len(id_arr), n)
        return Rows(id_arr, vecs, list(texts) if texts is not None else None, meta)

    def _new_ids(self, n: int) -> Steps[NDArray[np.int64]]:
        """Ids from a counter in Redis, skipping any the store already holds."""
        while True:
            end = yield call("buckets", "next_ids", n)
            ids = np.arange(end - n + 1, end + 1, dtype=np.int64)
            if len((yield call("store", "get", ids, payload=False))) == 0:
                return ids

    def index(self, ids: Any = None, vectors: Any = None, *, rebuild: bool = False) -> int:
        """Build buckets for rows already in the store.

        Without arguments, streams the store in id order and indexes every row
        past the checkpoint of the last run, so an interrupted build resumes
        where it stopped and a finished one picks up rows added since.
        ``rebuild=True`` drops the buckets and starts over.

        With `ids` and `vectors`, indexes those arrays directly (the rows are
        expected in the store already, e.g. loaded by your own tooling).

        Returns:
            Number of rows indexed by this call.
        """
        if ids is not None or vectors is not None:
            return build.index_arrays(self, ids, vectors)
        if rebuild:
            self._drop_buckets()
        return build.index_store(self)

    def _drop_buckets(self) -> None:
        meta = self.buckets.read_meta()
        self.buckets.clear()
        if meta:
            keep = {k: meta[k] for k in (*_HASH_PARAMS, *_LAYOUT_FIELDS, *_SETTINGS) if k in meta}
            self.buckets.create_meta(keep)

    def delete(self, ids: Any) -> int:
        """Remove documents from the buckets, then from the store.

        Unknown ids are ignored. Buckets go first: their entries are found by
        re-hashing the stored vectors, which must still be there.

        Returns:
            How many of the ids were in the store (and are now gone).
        """
        return steps.run(self._delete_steps(ids), self._targets())

    async def adelete(self, ids: Any) -> int:
        """`delete` without blocking the event loop."""
        return await steps.arun(self._delete_steps(ids), self._targets())

    def _delete_steps(self, ids: Any) -> Steps[int]:
        id_arr = self._ids(ids)
        if self.hasher is None:
            return 0
        return (yield from self._locked(id_arr, self._remove_steps(id_arr, self.hasher)))

    def _remove_steps(self, ids: NDArray[np.int64], hasher: Hasher) -> Steps[int]:
        rows = yield call("store", "get", ids, payload=False)
        if not len(rows):
            return 0
        yield call("buckets", "apply", remove=self.buckets.group(rows.ids, hasher.codes(rows.vectors)))
        return int((yield call("store", "delete", rows.ids)))

    def clear(self) -> int:
        """Delete this index's Redis keys (buckets, parameters); the store is left as is.

        Returns:
            Number of Redis keys removed.
        """
        removed = self.buckets.clear()
        self.hasher = None
        self.params = {}
        return removed

    # -- queries -----------------------------------------------------------

    def warm(self) -> int:
        """Sketch every stored vector into this process's sketch cache, so `top_p` queries start warm.

        Without it the cache fills as queries read vectors. One scan of the
        store (ids and vectors only); stops when the cache is full.

        Returns:
            How many sketches were added.
        """
        if self.hasher is None and not self._attach():
            return 0  # no index yet; attaching is also what makes the cache
        if self.sketches is None:
            return 0  # sketch_cache=0
        self.sketches.sync(self.buckets.generation())
        added = 0
        pages = Pages(self.store)
        for rows in pages.scan(self.batch_size, payload=False):
            added += self._learn_sketches(rows)
            if len(self.sketches) >= self.sketches.capacity:
                break
        return added

    def _learn_sketches(self, rows: Rows) -> int:
        """Keep the sketches of vectors a query has read (a step of the query, see search.py)."""
        return 0 if self.sketches is None or not len(rows) else self.sketches.add(rows.ids, rows.vectors)

    def query(
        self,
        query: str | Any,
        *,
        top_k: int = 10,
        top_p: float | None = None,
        rerank: bool = True,
        num_probes: int | None = None,
        filter: filters.Filter | None = None,
    ) -> list[Hit]:
        """Nearest documents to one text or vector, best first.

        Args:
            top_k: results wanted; a reranked query returns min(top_k, rows).
            top_p: fraction in (0, 1] of the LSH candidates whose vectors
                are fetched and reranked by exact cosine (never fewer than
                top_k). None reranks them all. Candidates are ranked by
                sketch distance where this process knows their sketch (it
                learns them from the vectors it reads, or from `warm()`),
                else by collision count; the unknown ones get a share of
                their own, so a cold process reranks up to twice as many.
            rerank: False skips the store and ranks ids by collision count.
            num_probes: buckets visited per table (default: the instance's).
            filter: only documents whose metadata has these key/values (a
                dict), or for which this callable of the metadata is true.
        """
        req = self._request(_one(query, self.dim), top_k, top_p, rerank, num_probes, filter)
        return steps.run(query_steps(self, req), self._targets())[0]

    async def aquery(
        self,
        query: str | Any,
        *,
        top_k: int = 10,
        top_p: float | None = None,
        rerank: bool = True,
        num_probes: int | None = None,
        filter: filters.Filter | None = None,
    ) -> list[Hit]:
        """`query` without blocking the event loop (the model runs in a worker thread)."""
        req = self._request(_one(query, self.dim), top_k, top_p, rerank, num_probes, filter)
        return (await steps.arun(query_steps(self, req), self._targets()))[0]

    def query_many(
        self,
        queries: Sequence[str] | Any,
        *,
        top_k: int = 10,
        top_p: float | None = None,
        rerank: bool = True,
        num_probes: int | None = None,
        filter: filters.Filter | None = None,
    ) -> list[list[Hit]]:
        """`query` for a batch: one bucket read and at most two store reads in all (more with a tight filter)."""
        req = self._request(queries, top_k, top_p, rerank, num_probes, filter)
        return steps.run(query_steps(self, req), self._targets())

    async def aquery_many(
        self,
        queries: Sequence[str] | Any,
        *,
        top_k: int = 10,
        top_p: float | None = None,
        rerank: bool = True,
        num_probes: int | None = None,
        filter: filters.Filter | None = None,
    ) -> list[list[Hit]]:
        """`query_many` without blocking the event loop."""
        req = self._request(queries, top_k, top_p, rerank, num_probes, filter)
        return await steps.arun(query_steps(self, req), self._targets())

    def _request(
        self, queries: Any, top_k: int, top_p: float | None, rerank: bool, num_probes: int | None, filter: Any
    ) -> Request:
        """Check a query batch whole before any I/O."""
        inputs.check_top(top_k, top_p)
        predicate = None if filter is None else filters.as_predicate(filter)
        if predicate is not None and not rerank:
            raise ValueError("filter: metadata is in the store, so a filtered query needs rerank=True")
        probes = _positive("num_probes", self.num_probes if num_probes is None else num_probes)
        if isinstance(queries, str):
            raise TypeError("queries: expected a list of texts or an (n, d) array; use query() for one")
        if isinstance(queries, Sequence) and len(queries) > 0 and all(isinstance(q, str) for q in queries):
            texts = inputs.as_texts(queries, name="queries")
            return Request(texts, None, top_k, top_p, rerank, probes, predicate)
        vectors = inputs.as_vectors(queries, dim=self.dim, name="queries")
        return Request(None, vectors, top_k, top_p, rerank, probes, predicate)

    def _targets(self) -> dict[str, Any]:
        """What the verbs' steps run against (see steps.py)."""
        if self._pages is None or self._pages.store is not self.store:
            self._pages = Pages(self.store)
        return {
            "lsh": self,
            "buckets": self.buckets,
            "store": self.store,
            "pages": self._pages,
            "clock": steps.Clock,
            "interrupts": steps.Interrupts(),
        }

    def _async_client(self) -> Any:
        """A redis.asyncio client for the current event loop: the one given, or one like the sync client."""
        if self._async_redis is not None:
            return self._async_redis
        return connection.async_twin(self.redis)

    def candidate_counts(self, queries: Any, *, num_probes: int | None = None) -> NDArray[np.int64]:
        """Distinct ids in each query's probed buckets: the rerank work a query does, for tuning."""
        vectors = inputs.as_vectors(queries, dim=self.dim, name="queries")
        probes = _positive("num_probes", self.num_probes if num_probes is None else num_probes)
        if self.hasher is None and not self._attach():
            return np.zeros(len(vectors), np.int64)
        pairs, _, _ = steps.run(search_candidates(self, vectors, probes), self._targets())
        return pairs.per_query(len(vectors))

    # -- tuning ------------------------------------------------------------

    def tune(
        self,
        vectors: Any = None,
        *,
        target_recall: float = tuning.DEFAULT_TARGET_RECALL,
        top_k: int = tuning.DEFAULT_TOP_K,
        sample_size: int = tuning.DEFAULT_SAMPLE_SIZE,
        num_queries: int = tuning.DEFAULT_NUM_QUERIES,
        grid: Mapping[str, Sequence[int]] | None = None,
        apply: bool = False,
        seed: int = 0,
        top_p: Sequence[float] = tuning.DEFAULT_TOP_P,
    ) -> TuneResult:
        """Measure (tables, bits, probes, top_p) settings on a sample; report the fastest that meets the target.

        Each (tables, bits) pair of the grid is built as a scratch index on
        this Redis under a temporary name, over a `MemoryStore` holding the
        sample, and deleted afterwards: this index's buckets and store are
        only read. `num_queries` rows of the sample are held out as queries,
        and their exact cosine top-k in the whole store (or among the given
        vectors) is the truth. See `lshrs.tune`.

        Args:
            vectors: (n, d) vectors to tune on; default a uniform random
                sample of up to `sample_size` stored rows (one scan of the
                store, and a second for the queries' neighbours when the
                store holds more rows than the sample).
            target_recall: recall@top_k to reach, in (0, 1].
            grid: optional lists under ``num_tables``, ``num_bits``,
                ``num_probes``; missing keys take the defaults of `lshrs.tune`.
            apply: make the chosen setting this index's parameters (only if
                one met the target). New tables or bits rebuild the buckets
                from the store; other processes using the index must reopen it.
            seed: seed of the sample and the held-out queries.
            top_p: shares of the candidates to try reranking (ranked by
                sketch) on the fastest settings that meet the target when
                reranking them all; ``()`` tries none. top_p is a query
                argument: applying a top_p row sets tables, bits and probes.

        Returns:
            A `TuneResult`: every measured row, the chosen one (None when no
            setting met the target), and a text table (``str(result)``).
        """
        return tuning.tune(
            self,
            vectors,
            target_recall=target_recall,
            top_k=top_k,
            sample_size=sample_size,
            num_queries=num_queries,
            grid=grid,
            apply=apply,
            seed=seed,
            top_p=top_p,
        )

    # -- lookups -----------------------------------------------------------

    def get(self, ids: Any, *, payload: bool = True) -> Rows:
        """Stored rows (ids, vectors, texts, metadata) in the order asked; unknown ids are left out."""
        return self.store.get(self._ids(ids, allow_empty=True), payload=payload)

    async def aget(self, ids: Any, *, payload: bool = True) -> Rows:
        """`get` without blocking the event loop."""
        step = call("store", "get", self._ids(ids, allow_empty=True), payload=payload)
        return await steps.arun(_single(step), self._targets())

    def find(self, filter: filters.Filter) -> NDArray[np.int64]:
        """Ids of every stored document whose metadata passes `filter`, ascending.

        A dict of scalar values is answered by the store itself when it can
        (SQL on the JSON column); anything else scans the store once.
        """
        return steps.run(self._find_steps(filter), self._targets())

    async def afind(self, filter: filters.Filter) -> NDArray[np.int64]:
        """`find` without blocking the event loop."""
        return await steps.arun(self._find_steps(filter), self._targets())

    def _find_steps(self, filter: filters.Filter) -> Steps[NDArray[np.int64]]:
        predicate = filters.as_predicate(filter)
        equals = filters.pushdown(filter)
        if equals is not None and callable(getattr(self.store, "find", None)):
            return np.sort(np.asarray((yield call("store", "find", equals)), np.int64))
        found = [np.empty(0, np.int64)]
        after = None
        while (rows := (yield call("pages", "page", after, self.batch_size))) is not None:
            after = int(rows.ids[-1])
            found.append(filters.matching(rows, predicate).ids)
        return np.concatenate(found)

    # -- consistency -------------------------------------------------------

    def verify(self) -> dict[str, Any]:
        """Compare the buckets with a fresh re-hash of the store (read-only).

        Returns a report: ``ok``, store rows, expected / found / missing /
        stale / repeated bucket entries, the entry counter, and a sample of the
        ids concerned. Writers running meanwhile show up as transient drift.
        """
        if self.hasher is None and not self._attach():
            return {"ok": self.store.count() == 0, "store_rows": self.store.count(), "reason": "no index"}
        return audit.report(self, audit.measure(self))

    def repair(self) -> dict[str, Any]:
        """Make the buckets match the store; returns the `verify` report from before the repair.

        Holds every writer lock while it runs, so concurrent ingest() and
        delete() calls wait (and time out after LOCK_WAIT_S).
        """
        if self.hasher is None and not self._attach():
            return self.verify()
        everything = np.arange(LOCK_STRIPES, dtype=np.int64)
        return steps.run(self._locked(everything, self._repair_steps()), {**self._targets(), "audit": audit})

    def _repair_steps(self) -> Steps[dict[str, Any]]:
        drift = yield call("audit", "measure", self)
        before = audit.report(self, drift)
        yield call("audit", "fix", self, drift)
        return before

    # -- introspection -----------------------------------------------------

    def count(self) -> int:
        """Vectors in the buckets (each holds one entry per table)."""
        if not self.params:
            return 0
        return self.buckets.entry_count() // self.params["num_tables"]

    def stats(self) -> dict[str, Any]:
        """Counts, parameters, bucket-size distribution and Redis memory.

        Reads every bucket's length, so it costs one SCAN of this index's keys.
        """
        sizes = self.buckets.bucket_sizes()
        pct = np.percentile(sizes, [50, 90, 99]).tolist() if len(sizes) else [0, 0, 0]
        memory = connection.used_memory(self.redis)
        return {
            "name": self.name,
            "count": self.count(),
            "store_count": self.store.count(),
            **self.params,
            "num_probes": self.num_probes,
            "buckets": int(len(sizes)),
            "bucket_size": {
                "mean": float(sizes.mean()) if len(sizes) else 0.0,
                "p50": pct[0],
                "p90": pct[1],
                "p99": pct[2],
                "max": int(sizes.max()) if len(sizes) else 0,
            },
            "bucket_payload_bytes": int(sizes.sum()) * self.params.get("id_bytes", DEFAULT_ID_BYTES),
            "redis_used_memory": memory,
        }

    def close(self) -> None:
        """Close the Redis client if this object created it."""
        if self._owns_client:
            self.redis.close()

    async def aclose(self) -> None:
        """Close the async Redis client made for the running event loop (and the store's async connection)."""
        await self.buckets.aclose()
        closer = getattr(self.store, "aclose", None)
        if closer is not None:
            await closer()

    def __enter__(self) -> LSHRS:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LSHRS(name={self.name!r}, params={self.params}, store={type(self.store).__name__})"


def default_table(name: str) -> str:
    """The default store's table: the index name, made case-proof.

    SQLite table names ignore case, so "Docs" and "docs" would share one
    table; a name with capitals gets its lowercase form plus a digest of the
    original. Lowercase names (every earlier default) keep their table.
    """
    if name == name.lower():
        return name
    return f"{name.lower()}_{hashlib.blake2b(name.encode(), digest_size=4).hexdigest()}"


def _one(query: Any, dim: int | None) -> Any:
    """One text or one vector, as a batch of one."""
    queries = [query] if isinstance(query, str) else inputs.as_vectors(query, dim=dim, name="query")
    if len(queries) != 1:
        raise ValueError(f"query: expected one vector, got {len(queries)}; use query_many")
    return queries


def _single(step: steps.Step) -> Steps[Any]:
    return (yield step)


def _check_params(params: dict[str, int]) -> None:
    for key, value in params.items():
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{key}: expected an int, got {type(value).__name__}")
    if params.get("num_bits") is not None and not 1 <= params["num_bits"] <= 30:
        raise ValueError(f"num_bits: expected 1..30, got {params['num_bits']}")
    if params.get("id_bytes") is not None and params["id_bytes"] not in (4, 8):
        raise ValueError(f"id_bytes: expected 4 or 8, got {params['id_bytes']}")
    for key in ("dim", "num_tables"):
        if key in params:
            _positive(key, params[key])


def _non_negative(name: str, value: Any) -> int:
    return _int_at_least(name, value, 0)


def _positive(name: str, value: Any) -> int:
    return _int_at_least(name, value, 1)


def _int_at_least(name: str, value: Any, low: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name}: expected >= {low}, got {value}")
    return value


def _slice(rows: Rows, lo: int, hi: int) -> Rows:
    return Rows(
        rows.ids[lo:hi],
        rows.vectors[lo:hi],
        None if rows.texts is None else rows.texts[lo:hi],
        None if rows.metadata is None else rows.metadata[lo:hi],
    )
