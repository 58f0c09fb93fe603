"""`LSHRS`: the one public class, a façade over the index's parts.

It builds the parts (Redis client, buckets, store, the `Attachment` that
holds the definition and hash family) and gives each verb one short method;
the work is elsewhere: writes.py (ingest, delete), search.py (queries),
build.py (index), audit.py (verify, repair), tune.py, locks.py. Nothing
outside this module reaches into an `LSHRS`; they take its parts.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from lshrs import audit, build, connection, embedded, filters, hybrid, inputs, locks, reopen, search, steps, writes
from lshrs import tune as tuning
from lshrs.attachment import Attachment
from lshrs.buckets import Buckets
from lshrs.centroids import DEFAULT_RERANK_DEPTH
from lshrs.definition import (
    DEFAULT_ID_BYTES,
    DEFAULT_NUM_BITS,
    DEFAULT_NUM_PROBES,
    DEFAULT_NUM_TABLES,
    DEFAULT_SEED,
    check_family,
    check_requested,
)
from lshrs.embeddings import Embedder
from lshrs.hashing import HashFamily
from lshrs.reopen import default_table
from lshrs.search import Hit
from lshrs.sketch import DEFAULT_CAPACITY as DEFAULT_SKETCH_CAPACITY
from lshrs.sketch import SketchCache
from lshrs.steps import Steps, call
from lshrs.stores.base import Metadata, Rows, Store, capabilities
from lshrs.stores.pages import Pages
from lshrs.text_model import TextModel

if TYPE_CHECKING:
    from lshrs.tune import TuneResult
    from lshrs.tune_probes import ProbeTuneResult

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_EXACT_BELOW",
    "DEFAULT_ID_BYTES",
    "DEFAULT_NUM_BITS",
    "DEFAULT_NUM_PROBES",
    "DEFAULT_NUM_TABLES",
    "DEFAULT_SEED",
    "LSHRS",
    "Hit",
    "default_table",
]

log = logging.getLogger("lshrs")

DEFAULT_BATCH_SIZE = 10_000
# Below this many indexed vectors a query scans the store exactly: that is
# both faster than probing and the only way tiny indexes answer top_k fully.
DEFAULT_EXACT_BELOW = 2_000


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
        num_probes: buckets visited per table at query time (multi-probe;
            for centroids, the nearest centroids visited); default: what
            `tune(apply=True)` saved with the index, else the family's default
            (128 for hyperplanes, see `centroids.default_probes`).
        seed: seed of the hyperplanes or the centroids' training (drawn once, then stored in Redis).
        id_bytes: width of an id in the buckets: 4 (default, ids below 2**31) or 8 (any int64 id).
        family: hash family of a new index: ``"centroids"`` (default: k-means
            buckets trained on the store, with ranking codes in the bucket
            entries; see the README) or ``"hyperplanes"``.
        nlist: centroids of a centroid index; default about 4 sqrt(rows).
        rerank_depth: candidates a centroid index reranks by exact cosine when
            a query gives no top_p (the codes choose them); default: what
            `tune(apply=True)` saved, else 200.
        redis: an existing redis-py client (``Redis`` or ``RedisCluster``).
        async_redis: a redis.asyncio client for the ``a``-prefixed verbs;
            default: one made like the sync client, per event loop.
        redis_url: used when `redis` is not given; else ``REDIS_URL``; else an
            embedded server under `data_dir`.
        store: where documents live; default an SQLite file under `data_dir`.
        postgres_dsn: instead of `store`, keep documents in this Postgres
            database, in the table the index keeps (see `mapping`).
        sqlite: instead of `store`, keep documents in this SQLite file.
        mapping: with `postgres_dsn`, `sqlite` or the default file, the table
            and columns of an existing table (``table``, ``schema``,
            ``id_column``, ``vector_column``, ``text_column``,
            ``metadata_column``; None for a column the table lacks). The
            index keeps them at its first write, so a later process
            reattaches with the name and the DSN (or file) alone.
        data_dir: directory of the embedded Redis and SQLite data.
        embedding_model: sentence-transformers name or model, or any callable
            texts -> (n, d) array; used for texts given to ingest and query.
        embed_batch_size: texts per batch given to the model.
        embedding_device: where a named model runs: "cpu", "cuda", "cuda:1",
            "mps", or several ("cuda:0,cuda:1", one process each); None
            picks the best available.
        embedding_backend: "auto" (OpenVINO on the CPU when installed, else
            PyTorch, in fp16 on CUDA), "torch" or "openvino".
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
        family: str | None = None,
        nlist: int | None = None,
        rerank_depth: int | None = None,
        redis: Any = None,
        redis_url: str | None = None,
        async_redis: Any = None,
        store: Store | None = None,
        postgres_dsn: str | None = None,
        sqlite: str | Path | None = None,
        mapping: Mapping[str, str | None] | None = None,
        data_dir: str | Path = embedded.DEFAULT_DATA_DIR,
        embedding_model: str | Embedder | Any | None = None,
        embed_batch_size: int = 64,
        embedding_device: str | Sequence[str] | None = None,
        embedding_backend: str = "auto",
        batch_size: int = DEFAULT_BATCH_SIZE,
        show_progress: bool = False,
        exact_below: int = DEFAULT_EXACT_BELOW,
        sketch_cache: int = DEFAULT_SKETCH_CAPACITY,
    ) -> None:
        self.name = inputs.check_name(name)
        self._num_probes = None if num_probes is None else inputs.positive("num_probes", num_probes)
        self.batch_size = inputs.positive("batch_size", batch_size)
        self.show_progress = show_progress
        self.exact_below = inputs.non_negative("exact_below", exact_below)
        sketch_capacity = inputs.non_negative("sketch_cache", sketch_cache)
        requested = check_requested(
            {"dim": dim, "num_tables": num_tables, "num_bits": num_bits, "seed": seed, "id_bytes": id_bytes}
        )
        family = check_family(family, requested)
        nlist = None if nlist is None else inputs.positive("nlist", nlist)
        self._rerank_depth = None if rerank_depth is None else inputs.positive("rerank_depth", rerank_depth)
        if store is not None:
            if postgres_dsn or sqlite or mapping is not None:
                raise TypeError("give store, or postgres_dsn / sqlite / mapping for lshrs to open one; not both")
            capabilities(store)  # a store lacking a required method is refused here, not at its first use
        self.redis, self._owns_client = connection.connect(redis, redis_url, data_dir)
        self._pages: Pages | None = None
        self._owns_store = store is None
        if store is None:
            store = reopen.open_store(
                self.redis, self.name, postgres_dsn=postgres_dsn, sqlite=sqlite, data_dir=data_dir, mapping=mapping
            )
        self._text_model = TextModel(embedding_model, embed_batch_size, embedding_device, embedding_backend)
        buckets = Buckets(self.redis, self.name)
        buckets.bind_async(_async_maker(self.redis, async_redis))  # not a bound method: no cycle through self
        self.attachment = Attachment(buckets, store, requested, sketch_capacity, family=family, nlist=nlist)
        self.attachment.attach()

    # -- the parts, as the verbs see them ---------------------------------

    @property
    def store(self) -> Store:
        return self.attachment.store

    @property
    def buckets(self) -> Buckets:
        return self.attachment.buckets

    @property
    def hasher(self) -> HashFamily | None:
        """The index's hash family, None until the index exists."""
        return self.attachment.family

    @property
    def sketches(self) -> SketchCache | None:
        return self.attachment.sketches

    @property
    def params(self) -> dict[str, int]:
        """The index's parameters (dim, num_tables, num_bits, seed, id_bytes); empty until it exists."""
        definition = self.attachment.definition
        return {} if definition is None else definition.params

    @property
    def dim(self) -> int | None:
        return self.attachment.dim

    @property
    def id_bytes(self) -> int:
        """Width of an id in the buckets: the index's, or the one it will be created with."""
        return self.attachment.id_bytes

    @property
    def num_probes(self) -> int:
        """Buckets visited per table: as given, else what `tune(apply=True)` saved, else the default."""
        if self._num_probes is not None:
            return self._num_probes
        if self.attachment.saved_probes:
            return self.attachment.saved_probes
        family = self.hasher
        return DEFAULT_NUM_PROBES if family is None else family.default_probes

    @num_probes.setter
    def num_probes(self, value: int) -> None:
        self._num_probes = inputs.positive("num_probes", value)

    @property
    def rerank_depth(self) -> int:
        """Candidates a centroid query reranks: as given, else what `tune(apply=True)` saved, else the default."""
        if self._rerank_depth is not None:
            return self._rerank_depth
        return self.attachment.saved_depth or DEFAULT_RERANK_DEPTH

    @rerank_depth.setter
    def rerank_depth(self, value: int) -> None:
        self._rerank_depth = inputs.positive("rerank_depth", value)

    # -- embedding ---------------------------------------------------------

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed texts with the index's model (see `lshrs.text_model`; loaded on first use)."""
        vectors = self._text_model.embed(texts, self.attachment)
        return inputs.as_vectors(vectors, dim=self.dim, name="embeddings")

    def remember_model(self) -> None:
        """Keep this instance's embedding model with the index (a step of an ingest of texts)."""
        self._text_model.remember(self.attachment)

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
        job = writes.ingest_steps(self.attachment, texts, vectors, ids, metadata, self.batch_size)
        return steps.run(job, self.step_targets())

    async def aingest(
        self,
        texts: Sequence[str] | None = None,
        vectors: Any = None,
        *,
        ids: Any = None,
        metadata: Sequence[Metadata | None] | None = None,
    ) -> NDArray[np.int64]:
        """`ingest` without blocking the event loop (redis.asyncio; async psycopg for Postgres)."""
        job = writes.ingest_steps(self.attachment, texts, vectors, ids, metadata, self.batch_size)
        return await steps.arun(job, self.step_targets())

    def index(self, ids: Any = None, vectors: Any = None, *, rebuild: bool = False, retrain: bool = False) -> int:
        """Build buckets for rows already in the store.

        Without arguments, streams the store in id order and indexes every row
        past the checkpoint of the last run, so an interrupted build resumes
        where it stopped and a finished one picks up rows added since.
        ``rebuild=True`` drops the buckets and starts over. On a centroid index
        the first build trains the centroids on a sample of the store, and
        ``retrain=True`` draws them again (when the corpus has grown several
        times over, see `stats()`), then places every row anew.

        With `ids` and `vectors`, indexes those arrays directly (the rows are
        expected in the store already, e.g. loaded by your own tooling).

        Returns:
            Number of rows indexed by this call.
        """
        if ids is not None or vectors is not None:
            return build.index_arrays(self.attachment, ids, vectors, self.batch_size)
        if retrain:
            return build.train_and_index(self.attachment, self.batch_size, self.show_progress, again=True)
        if rebuild:
            self.attachment.reset_buckets()
        return build.index_store(self.attachment, self.batch_size, self.show_progress)

    def delete(self, ids: Any) -> int:
        """Remove documents from the buckets, then from the store.

        Unknown ids are ignored. Buckets go first: their entries are found by
        re-hashing the stored vectors, which must still be there.

        Returns:
            How many of the ids were in the store (and are now gone).
        """
        return steps.run(writes.delete_steps(self.attachment, ids), self.step_targets())

    async def adelete(self, ids: Any) -> int:
        """`delete` without blocking the event loop."""
        return await steps.arun(writes.delete_steps(self.attachment, ids), self.step_targets())

    def clear(self) -> int:
        """Delete this index's Redis keys (buckets, parameters); the store is left as is.

        Returns:
            Number of Redis keys removed.
        """
        removed = self.buckets.clear()
        self.attachment.forget()
        return removed

    # -- queries -----------------------------------------------------------

    def warm(self) -> int:
        """Sketch every stored vector into this process's sketch cache, so `top_p` queries start warm.

        Without it the cache fills as queries read vectors. One scan of the
        store (ids and vectors only); stops when the cache is full.

        Returns:
            How many sketches were added.
        """
        return self.attachment.warm(self.batch_size)

    def query(
        self,
        query: str | Any,
        *,
        top_k: int = 10,
        top_p: float | None = None,
        rerank: bool = True,
        num_probes: int | None = None,
        filter: filters.Filter | None = None,
        alpha: float | None = None,
        keywords: str | None = None,
        payload: bool = True,
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
            rerank: False skips the store: ids ranked by collision count (hyperplanes;
                score = share of tables) or by ranking code (centroids; score = the
                code's estimate, not a cosine). An index too small to train
                answers from the store either way.
            num_probes: buckets visited per table (default: the instance's).
            filter: only documents whose metadata passes this filter (a dict in
                the language of `lshrs.where`: ``{"year": {"$gte": 2021}}``),
                or for which this callable of the metadata is true.
            alpha: hybrid search, for a text query: the weight of the vector search
                against the store's keyword search (SQLite FTS5, Postgres full-text
                search, in-process BM25 for the others) in a reciprocal rank fusion.
                None or 1: vectors only; 0: keywords only. With alpha < 1, `score`
                is the fusion score, not a cosine. See `lshrs.hybrid`.
            keywords: the text keyword search matches, when the query is a vector
                embedded elsewhere (a framework's embedding model); a text query is its own.
            payload: False leaves each hit's text and metadata None and saves the store
                read that fetches them: ids and exact scores only, for a caller that
                joins the ids itself (RediSearch's NOCONTENT, Qdrant's with_payload=False).
        """
        req = self._request(search.one_query(query, self.dim), top_k, top_p, rerank, num_probes, filter, payload)
        return steps.run(self._steps(req, alpha, None if keywords is None else [keywords]), self.step_targets())[0]

    async def aquery(
        self,
        query: str | Any,
        *,
        top_k: int = 10,
        top_p: float | None = None,
        rerank: bool = True,
        num_probes: int | None = None,
        filter: filters.Filter | None = None,
        alpha: float | None = None,
        keywords: str | None = None,
        payload: bool = True,
    ) -> list[Hit]:
        """`query` without blocking the event loop (the model runs in a worker thread)."""
        req = self._request(search.one_query(query, self.dim), top_k, top_p, rerank, num_probes, filter, payload)
        wanted = None if keywords is None else [keywords]
        return (await steps.arun(self._steps(req, alpha, wanted), self.step_targets()))[0]

    def query_many(
        self,
        queries: Sequence[str] | Any,
        *,
        top_k: int = 10,
        top_p: float | None = None,
        rerank: bool = True,
        num_probes: int | None = None,
        filter: filters.Filter | None = None,
        alpha: float | None = None,
        keywords: Sequence[str] | None = None,
        payload: bool = True,
    ) -> list[list[Hit]]:
        """`query` for a batch: one bucket read and at most two store reads in all (more with a tight filter)."""
        req = self._request(queries, top_k, top_p, rerank, num_probes, filter, payload)
        return steps.run(self._steps(req, alpha, keywords), self.step_targets())

    async def aquery_many(
        self,
        queries: Sequence[str] | Any,
        *,
        top_k: int = 10,
        top_p: float | None = None,
        rerank: bool = True,
        num_probes: int | None = None,
        filter: filters.Filter | None = None,
        alpha: float | None = None,
        keywords: Sequence[str] | None = None,
        payload: bool = True,
    ) -> list[list[Hit]]:
        """`query_many` without blocking the event loop."""
        req = self._request(queries, top_k, top_p, rerank, num_probes, filter, payload)
        return await steps.arun(self._steps(req, alpha, keywords), self.step_targets())

    def _steps(
        self, req: search.Request, alpha: float | None, keywords: Sequence[str] | None
    ) -> Steps[list[list[Hit]]]:
        """The query's steps: the vector search, or with alpha < 1 the hybrid search (checked before any I/O)."""
        weight = 1.0 if alpha is None else hybrid.check_alpha(alpha)
        if weight == 1.0:
            return search.query_steps(self.attachment, req)
        texts = hybrid.keyword_texts(req, self.store, keywords)
        return hybrid.hybrid_steps(self.attachment, req, weight, texts)

    def _request(
        self,
        queries: Any,
        top_k: int,
        top_p: float | None,
        rerank: bool,
        num_probes: int | None,
        filter: Any,
        payload: bool,
    ) -> search.Request:
        return search.request(
            queries,
            dim=self.dim,
            top_k=top_k,
            top_p=top_p,
            rerank=rerank,
            probes=self.num_probes if num_probes is None else num_probes,
            filter=filter,
            exact_below=self.exact_below,
            batch_size=self.batch_size,
            rerank_depth=self.rerank_depth,
            payload=payload,
        )

    def step_targets(self) -> dict[str, Any]:
        """What the verbs' steps run against (see steps.py), for a driver of its own (benchmarks/stores.py)."""
        if self._pages is None or self._pages.store is not self.store:
            self._pages = Pages(self.store)
        return {
            "index": self.attachment,
            "model": self,
            "buckets": self.buckets,
            "leases": locks.Heartbeats(self.buckets),
            "store": self.store,
            "pages": self._pages,
            "clock": steps.Clock,
            "interrupts": steps.Interrupts(),
            "build": build,
        }

    def candidate_counts(self, queries: Any, *, num_probes: int | None = None) -> NDArray[np.int64]:
        """Distinct ids in each query's probed buckets: the rerank work a query does, for tuning."""
        vectors = inputs.as_vectors(queries, dim=self.dim, name="queries")
        probes = inputs.positive("num_probes", self.num_probes if num_probes is None else num_probes)
        if self.hasher is None and not self.attachment.attach():
            return np.zeros(len(vectors), np.int64)
        return search.probe(self.attachment, vectors, probes).per_query(len(vectors))

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
    ) -> TuneResult | ProbeTuneResult:
        """Measure settings on your own vectors; report (and optionally apply) the fastest that meets the target.

        A centroid index (the default family) measures (num_probes,
        rerank_depth) on itself: `num_queries` stored rows (or `vectors`) are
        the queries, their exact top-k in the store is the truth, and every
        setting is timed with real queries. See `lshrs.tune_probes`.

        A hyperplane index builds each (tables, bits) pair of the grid as a
        scratch index on this Redis over a `MemoryStore` of a sample and
        deletes it afterwards; `num_queries` rows of the sample are held out,
        and their exact top-k in the whole store (or among `vectors`) is the
        truth. See `lshrs.tune`.

        This index's buckets and store are only read unless `apply`.

        Args:
            vectors: (n, d) vectors to tune on; default a uniform random sample
                of the store (centroids: `num_queries` rows; hyperplanes: up
                to `sample_size`).
            grid: optional lists under ``num_probes`` and ``rerank_depth``
                (centroids) or ``num_tables``, ``num_bits``, ``num_probes``.
            apply: make the chosen setting this index's (only if one met the
                target). Centroids: probes and depth are saved in the index's
                meta. Hyperplanes: new tables or bits rebuild the buckets.
            top_p: hyperplanes only: shares of the candidates to try
                reranking, ranked by sketch; ``()`` tries none.

        Returns:
            A `TuneResult` (hyperplanes) or `ProbeTuneResult` (centroids):
            every measured row, the chosen one (None when none met the
            target), and a text table (``str(result)``).
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
        return self.store.get(self._ids(ids), payload=payload)

    async def aget(self, ids: Any, *, payload: bool = True) -> Rows:
        """`get` without blocking the event loop."""
        return await steps.arun(_single(call("store", "get", self._ids(ids), payload=payload)), self.step_targets())

    def _ids(self, ids: Any) -> NDArray[np.int64]:
        return inputs.as_ids(ids, id_bytes=self.id_bytes, allow_empty=True)

    def find(self, filter: filters.Filter) -> NDArray[np.int64]:
        """Ids of every stored document whose metadata passes `filter`, ascending.

        A dict (the filter language of `lshrs.where`) is answered by the
        store's SQL where it has some and can express it exactly; anything
        else, and callables, scan the store once.
        """
        return steps.run(filters.find_steps(self.store, filter, self.batch_size), self.step_targets())

    async def afind(self, filter: filters.Filter) -> NDArray[np.int64]:
        """`find` without blocking the event loop."""
        return await steps.arun(filters.find_steps(self.store, filter, self.batch_size), self.step_targets())

    # -- consistency -------------------------------------------------------

    def verify(self) -> dict[str, Any]:
        """Compare the buckets with a fresh re-hash of the store (read-only).

        Returns a report: ``ok``, store rows, expected / found / missing /
        stale / repeated bucket entries, the entry counter, and a sample of the
        ids concerned. Writers running meanwhile show up as transient drift.
        """
        if self.hasher is None and not self.attachment.attach():
            return {"ok": self.store.count() == 0, "store_rows": self.store.count(), "reason": "no index"}
        return audit.report(self.attachment, audit.measure(self.attachment, self.batch_size))

    def repair(self) -> dict[str, Any]:
        """Make the buckets match the store; returns the `verify` report from before the repair.

        Holds every writer lock while it runs, so concurrent ingest() and
        delete() calls wait (and time out after `locks.LOCK_WAIT_S`).
        """
        if self.hasher is None and not self.attachment.attach():
            return self.verify()
        job = locks.locked(self.name, locks.every_stripe(), audit.repair_steps(self.attachment, self.batch_size))
        return steps.run(job, {**self.step_targets(), "audit": audit})

    # -- introspection -----------------------------------------------------

    def count(self) -> int:
        """Vectors the index answers from: those in the buckets (each holds one entry per table).

        A centroid index too small to train answers from its store directly, so
        its count is the store's.
        """
        return self.attachment.count()

    def stats(self) -> dict[str, Any]:
        """Counts, parameters, bucket-size distribution and Redis memory.

        Reads every bucket's length, so it costs one SCAN of this index's keys.
        """
        stats = {"name": self.name, **audit.stats(self.attachment), "num_probes": self.num_probes}
        return {**stats, "model": self._text_model.name(self.attachment.saved_model)}

    def close(self) -> None:
        """Close the Redis client and the store if this object created them (the embedded default's).

        Also stops the embedding model's worker processes, when it embeds on several devices.
        """
        self._text_model.close()
        if self._owns_client:
            self.redis.close()
        closer = getattr(self.store, "close", None)
        if self._owns_store and closer is not None:
            closer()

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


def _async_maker(client: Any, given: Any) -> Any:
    """How the buckets get a redis.asyncio client per event loop: the one given, or one like `client`."""

    def make() -> Any:
        return given if given is not None else connection.async_twin(client)

    return make


def _single(step: steps.Step) -> Steps[Any]:
    return (yield step)
