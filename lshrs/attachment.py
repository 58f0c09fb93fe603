"""What this process knows of one named index: its definition, hash family and sketch cache.

An index lives in Redis; a process attaches to it by reading its definition
back, or creates it once the vectors' dimension is known (from the store, or
from the first vectors written). Every verb reaches the buckets, the store
and the hash family through an `Attachment`; it owns nothing the verbs do,
only the reading, creating and redefining of the index definition.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from lshrs import centroids, locks, steps
from lshrs import definition as fields
from lshrs.buckets import Buckets, Layout, server_layout
from lshrs.definition import BuildState, Definition, Meta
from lshrs.hashing import HashFamily, family_for
from lshrs.hyperplanes import Hyperplanes
from lshrs.sampling import Source, reservoir
from lshrs.sketch import SketchCache
from lshrs.stores.base import Rows, Store
from lshrs.stores.pages import Pages

log = logging.getLogger("lshrs")


class Attachment:
    """One named index as seen from this process.

    Args:
        buckets: the index's Redis side.
        store: where its documents live.
        requested: parameters the user passed (checked by `definition.check_requested`);
            an existing index with other values is refused.
        sketch_capacity: vectors whose sketches this process keeps (0: none).
        family: the hash family of a new index (None: the index's, or hyperplanes);
            an existing index of another family is refused.
        nlist: centroids to train (centroid family; None: `centroids.default_nlist`).
    """

    def __init__(
        self,
        buckets: Buckets,
        store: Store,
        requested: Mapping[str, int],
        sketch_capacity: int,
        *,
        family: str | None = None,
        nlist: int | None = None,
    ) -> None:
        self.buckets = buckets
        self.store = store
        self.requested = dict(requested)
        self.requested_family = family
        self.requested_nlist = nlist
        self.sketch_capacity = sketch_capacity
        self.definition: Definition | None = None
        self.family: HashFamily | None = None
        self.sketches: SketchCache | None = None
        self.saved_probes: int | None = None
        self.saved_depth: int | None = None  # the rerank depth tune(apply=True) chose
        self.saved_model: str | None = None  # the embedding model of the index's texts (text_model.py)

    @property
    def name(self) -> str:
        return self.buckets.name

    @property
    def dim(self) -> int | None:
        return None if self.definition is None else self.definition.dim

    @property
    def id_bytes(self) -> int:
        """Width of an id in the buckets: the index's, or the one it will be created with."""
        if self.definition is not None:
            return self.definition.id_bytes
        return self.requested.get(fields.ID_BYTES, fields.DEFAULT_ID_BYTES)

    @property
    def seed(self) -> int:
        if self.definition is not None:
            return self.definition.seed
        return self.requested.get(fields.SEED, fields.DEFAULT_SEED)

    def attach(self) -> bool:
        """Load the definition from Redis, or create it when the dimension is known; False when neither."""
        raw = self.buckets.read_meta()
        if raw:
            self._load(raw)
            return True
        dim = self.requested.get(fields.DIM) or self.store.dim()
        if dim:
            self._create(int(dim))
            return True
        return False

    def ready(self, dim: int) -> HashFamily:
        """The hash family, creating the index from the first vectors' dimension if needed."""
        if self.family is None and not self.attach():
            self._create(dim)
        assert self.family is not None
        return self.family

    def reload(self) -> HashFamily:
        """The family as Redis has it now (another process may have trained the index)."""
        self.attach()
        assert self.family is not None
        return self.family

    def read_meta(self) -> Meta | None:
        """The meta hash as it is now in Redis, None when the index does not exist."""
        raw = self.buckets.read_meta()
        return Meta.parse(self.name, raw) if raw else None

    def forget(self) -> None:
        """Drop what this process knew: the index was cleared."""
        self.definition = None
        self.family = None

    def train(self, batch_size: int, *, show_progress: bool = False, again: bool = False) -> bool:
        """Draw centroids from a uniform sample of the store and make them the index's (centroid family).

        The definition is swapped in one step and marked `BuildState.REDEFINE`,
        like the tuner's apply, so the next `index()` drops any old buckets and
        places every stored row; readers see the old definition or the new one.
        One process trains at a time (locks.one_trainer): unless `again` (an
        asked-for retrain), a process whose turn comes after another trained
        keeps those centroids instead of drawing its own.
        Returns False, changing nothing, while the store is too small to train.
        """
        if self.family is None and not self.attach():
            return False
        with locks.one_trainer(self.buckets.client, self.buckets.prefix + b"training", self.name):
            if not again:
                self.attach()  # what the index is now: another process may have trained it meanwhile
                assert self.family is not None
                if self.family.trained and not self.outgrown():
                    return True
            rows = self.store.count()
            nlist = self.requested_nlist or centroids.default_nlist(rows)
            if rows < max(centroids.TRAIN_MIN_ROWS, nlist):
                return False
            source = Source(self.store, self.name, self.dim, batch_size, show_progress)
            size = min(rows, max(nlist * centroids.TRAIN_ROWS_PER_CENTROID, centroids.TRAIN_MIN_ROWS))
            # the index's own seed: the same store and seed give the same centroids
            sample, seen = reservoir(source, size, np.random.default_rng(self.seed))
            family = centroids.Centroids.fit(sample.vectors, nlist, seed=self.seed, trained_rows=seen)
            self._swap_holding_writers(self._definition_of(family))
        log.info("index %r: trained %d centroids on %d of %d rows", self.name, nlist, len(sample), seen)
        return True

    def _swap_holding_writers(self, definition: Definition) -> None:
        """Swap in a new definition while no writer is between its store write and its bucket write.

        A writer asks, under its lease, whether the index is trained
        (writes.trained_now); holding every stripe here makes that answer
        hold until it lets go.
        """
        targets = {
            "buckets": self.buckets,
            "leases": locks.Heartbeats(self.buckets),
            "clock": steps.Clock,
            "interrupts": steps.Interrupts(),
        }
        swap = steps.inline(lambda: self._replace(definition, {fields.BUILD: BuildState.REDEFINE.value}))
        steps.run(locks.locked(self.name, locks.every_stripe(), swap), targets)

    def count(self) -> int:
        """Vectors the index answers from: those in its buckets, or a centroid index's store until it trains."""
        if self.family is None and not self.attach():
            return 0  # attach first: another process may have made the index since this one looked
        family = self.family
        assert family is not None
        if not family.trained:
            return self.store.count()
        return self.buckets.entry_count() // family.num_tables

    def outgrown(self) -> bool:
        """True when a centroid index holds `centroids.RETRAIN_GROWTH` times the rows it was trained on."""
        family = self.family
        if not isinstance(family, centroids.Centroids) or not family.trained_rows:
            return False
        return self.buckets.entry_count() > centroids.RETRAIN_GROWTH * family.trained_rows

    def redefine(self, dim: int, num_tables: int, num_bits: int, num_probes: int) -> None:
        """Give the index new tables, bits and probes; `index()` then rebuilds the buckets from the store.

        The meta hash is swapped in one step and marked `BuildState.REDEFINE`:
        an `index()` that finds the mark drops the old buckets before it
        builds, so a rebuild interrupted at any point is finished by running
        `index()` again. Seed, id width and the id counter carry over.
        """
        if self.definition is not None:
            self.requested.update(self.definition.params)
        self.requested.update({fields.DIM: dim, fields.NUM_TABLES: num_tables, fields.NUM_BITS: num_bits})
        self.requested_family = Hyperplanes.kind  # tables and bits are the hyperplanes' parameters
        extra = {fields.NUM_PROBES: num_probes, fields.BUILD: BuildState.REDEFINE.value}
        self._replace(self._new_definition(dim), extra)

    def _replace(self, definition: Definition, extra: Mapping[str, Any]) -> None:
        """Swap the meta hash for a new definition in one step; the id counter carries over."""
        old = self.read_meta()
        meta = {**definition.to_meta(), **extra}
        counter = old.next_id() if old is not None else None
        if counter is not None:
            meta[fields.NEXT_ID] = counter
        self.buckets.replace_meta(meta)
        self._load(self.buckets.read_meta())

    def reset_buckets(self) -> None:
        """Drop every bucket and start the definition over with no build state or counters (a rebuild)."""
        meta = self.read_meta()
        self.buckets.clear()
        if meta is not None:
            self.buckets.create_meta(meta.kept_on_rebuild())

    def warm(self, batch_size: int) -> int:
        """Sketch every stored vector into the sketch cache (one scan, until it is full); how many were added."""
        if self.family is None and not self.attach():
            return 0  # no index yet; attaching is also what makes the cache
        cache = self.sketches
        if cache is None:
            return 0  # sketch_cache=0
        cache.sync(self.buckets.generation())
        added = 0
        for rows in Pages(self.store).scan(batch_size, payload=False):
            added += self.learn_sketches(rows)
            if len(cache) >= cache.capacity:
                break
        return added

    def learn_sketches(self, rows: Rows) -> int:
        """Keep the sketches of vectors a query has read (a step of the query, see search.py)."""
        return 0 if self.sketches is None or not len(rows) else self.sketches.add(rows.ids, rows.vectors)

    def _load(self, raw: Mapping[str, bytes]) -> None:
        meta = Meta.parse(self.name, raw)
        definition = meta.definition
        definition.check_conflicts(self.name, self.requested, self.requested_family)
        family = family_for(definition)
        self.buckets.layout = Layout(
            id_bytes=definition.id_bytes,
            num_bits=definition.num_bits,
            group_bits=definition.group_bits,
            small_max=definition.small_max,
            code_bytes=family.code_bytes,
        )
        self.family = family
        self.definition = definition
        self.saved_probes = meta.num_probes
        self.saved_depth = meta.rerank_depth
        self.saved_model = meta.model
        describe = getattr(self.store, "describe", None)
        if fields.STORE not in meta.raw and callable(describe):
            # how to open this index's table again (the CLI reattaches with a DSN or a path and the name)
            self.buckets.claim_meta(fields.STORE, json.dumps(describe(), sort_keys=True))
        if family.code_bytes:
            self.sketches = None  # the bucket entries carry what ranks the candidates
        elif self.sketch_capacity and (self.sketches is None or self.sketches.dim != definition.dim):
            self.sketches = SketchCache(definition.dim, capacity=self.sketch_capacity)

    def _create(self, dim: int) -> None:
        definition = self._new_definition(dim)
        if self.buckets.create_meta(definition.to_meta()):
            log.info("created index %r: %s", self.name, definition.params)
        self._load(self.buckets.read_meta())

    def _new_definition(self, dim: int) -> Definition:
        """The requested parameters (defaults for the rest): fresh hyperplanes, or untrained centroids."""
        if (self.requested_family or fields.DEFAULT_FAMILY) == centroids.Centroids.kind:
            return self._definition_of(centroids.Untrained(dim))
        get = self.requested.get
        tables, bits = get(fields.NUM_TABLES, fields.DEFAULT_NUM_TABLES), get(fields.NUM_BITS, fields.DEFAULT_NUM_BITS)
        return self._definition_of(Hyperplanes.draw(dim, tables, bits, self.seed))

    def _definition_of(self, family: HashFamily) -> Definition:
        group_bits, small_max = server_layout(self.buckets.client)
        if family.code_bytes or not family.trained:
            # few, large buckets: each its own string, under its own hash tag (so they spread over a cluster)
            group_bits, small_max = 0, 0
        return Definition(
            dim=family.dim,
            num_tables=family.num_tables,
            num_bits=family.num_bits,
            seed=self.seed,
            id_bytes=self.id_bytes,
            group_bits=min(group_bits, family.num_bits),
            small_max=small_max,
            family=family.kind,
            family_fields=family.fields(),
        )

    def __repr__(self) -> str:
        params: Any = None if self.definition is None else self.definition.params
        return f"Attachment(name={self.name!r}, params={params})"
