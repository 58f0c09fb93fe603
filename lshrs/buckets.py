"""The Redis side of an index: the only module that knows key names and commands.

Layout, everything under ``lshrs:{name}:`` so indexes share a Redis safely:

- ``lshrs:{name}:meta`` — a hash: index parameters, format version, the
  hyperplanes (raw float32), the entry counter and the build checkpoint.
- A bucket (table ``t``, code ``c``) holds its member ids packed as
  little-endian integers of ``id_bytes`` each, in one of two places:

  - small buckets share a hash ``lshrs:{name}:b:{t.g}`` where ``g = c >> group_bits``,
    under the field ``c & (2**group_bits - 1)``;
  - a bucket that outgrows ``small_max`` bytes moves to its own string
    ``lshrs:{name}:b:{t.g}:{field}``.

Why two tiers, by measurement (benchmarks/results/core.md): a Redis key costs
about 80 bytes before its value, so one key per bucket costs more than the ids
themselves while buckets hold a handful of ids — the common case below a few
million vectors. Redis stores a small hash as one compact listpack (a few
bytes per field) as long as every value stays under
``hash-max-listpack-value``; large buckets go to strings, whose key cost is
then small next to their payload. The braces are a Redis Cluster hash tag: a
group's hash and its large strings share one slot, so every script below
touches keys of a single slot and the layout works unchanged on a cluster.

Values are rewritten whole (GET/HGET, concatenate, SET/HSET) rather than
APPENDed, because APPEND over-allocates up to twice the string's size.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from redis.exceptions import NoScriptError

log = logging.getLogger("lshrs")

FORMAT_VERSION = 2
DEFAULT_GROUP_BITS = 6
DEFAULT_SMALL_MAX = 64
_SCAN_COUNT = 1000
# Buckets per call of the packed append script: a few milliseconds of server time each.
_PACKED_BUCKETS = 2048

# One key: create the meta hash only if it does not exist yet, so two
# processes creating the same index race safely (the loser reads the winner's).
_CREATE_META = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""

# One key: swap the meta hash for a new one in one step, so a reader sees
# either the old index definition or the new one, never neither.
_REPLACE_META = """
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""

# One group: KEYS = [hash, large string of each field...],
# ARGV = [small_max, field1, ids1, field2, ids2, ...]. Appends packed ids to
# each bucket, moving a bucket to its string once it outgrows small_max.
_APPEND = """
local limit = tonumber(ARGV[1])
for i = 2, #KEYS do
  local field, add = ARGV[2 * i - 2], ARGV[2 * i - 1]
  local large = redis.call('GET', KEYS[i])
  if large then
    redis.call('SET', KEYS[i], large .. add)
  else
    local value = (redis.call('HGET', KEYS[1], field) or '') .. add
    if #value > limit then
      redis.call('HDEL', KEYS[1], field)
      redis.call('SET', KEYS[i], value)
    else
      redis.call('HSET', KEYS[1], field, value)
    end
  end
end
return 0
"""

# Standalone Redis only (it builds key names): _APPEND for many groups in one
# call. ARGV = [small_max, the index's key prefix, "table.group:buckets"
# tokens separated by spaces, one byte per bucket with its field, a
# little-endian uint32 per bucket with its byte length, every bucket's ids
# concatenated]. A bucket is read from its group hash first, where nearly all
# of them live, and from its own string only when the hash lacks it.
_APPEND_PACKED = """
local limit, prefix, fields, lengths, ids = tonumber(ARGV[1]), ARGV[2], ARGV[4], ARGV[5], ARGV[6]
local b, pos = 0, 1
for tag, n in string.gmatch(ARGV[3], '(%d+%.%d+):(%d+)') do
  local hash = prefix .. 'b:{' .. tag .. '}'
  for _ = 1, tonumber(n) do
    b = b + 1
    local f = string.byte(fields, b)
    local l1, l2, l3, l4 = string.byte(lengths, 4 * b - 3, 4 * b)
    local size = l1 + 256 * (l2 + 256 * (l3 + 256 * l4))
    local add = string.sub(ids, pos, pos + size - 1)
    pos = pos + size
    local small = redis.call('HGET', hash, f)
    local large = (not small) and redis.call('GET', hash .. ':' .. f)
    if large then
      redis.call('SET', hash .. ':' .. f, large .. add)
    else
      local value = (small or '') .. add
      if #value > limit then
        redis.call('HDEL', hash, f)
        redis.call('SET', hash .. ':' .. f, value)
      else
        redis.call('HSET', hash, f, value)
      end
    end
  end
end
return 0
"""

# One group, same KEYS and ARGV as _APPEND with ARGV[1] = id width in bytes:
# drops every occurrence of the given ids (compared at aligned offsets) and
# deletes buckets left empty. Returns how many entries were removed.
_REMOVE = """
local width = tonumber(ARGV[1])
local removed = 0
for i = 2, #KEYS do
  local field, ids = ARGV[2 * i - 2], ARGV[2 * i - 1]
  local large = true
  local blob = redis.call('GET', KEYS[i])
  if not blob then
    large = false
    blob = redis.call('HGET', KEYS[1], field)
  end
  if blob then
    local drop = {}
    for j = 1, #ids, width do drop[string.sub(ids, j, j + width - 1)] = true end
    local keep, before = {}, removed
    for j = 1, #blob, width do
      local chunk = string.sub(blob, j, j + width - 1)
      if drop[chunk] then removed = removed + 1 else keep[#keep + 1] = chunk end
    end
    if removed > before then
      local rest = table.concat(keep)
      if large and #rest > 0 then redis.call('SET', KEYS[i], rest)
      elseif large then redis.call('DEL', KEYS[i])
      elseif #rest > 0 then redis.call('HSET', KEYS[1], field, rest)
      else redis.call('HDEL', KEYS[1], field) end
    end
  end
end
return removed
"""

# Standalone Redis only (it builds key names, which a cluster forbids across
# slots): read many buckets in one call. ARGV[1] = the index's key prefix,
# ARGV[2] = "table.group.field" tokens separated by spaces. Returns three
# strings: every bucket's members concatenated, the byte length of each
# bucket ("12,0,48,..."), the index's entry count and its generation (saves a
# round trip per query). One packed reply instead of one reply per bucket: redis-py's
# pure-Python parser spent about 1 ms per query on 150 separate replies.
_READ_MANY = """
local out, lens, n = {}, {}, 0
for t, g, f in string.gmatch(ARGV[2], '(%d+)%.(%d+)%.(%d+)') do
  local hash = ARGV[1] .. 'b:{' .. t .. '.' .. g .. '}'
  n = n + 1
  out[n] = redis.call('HGET', hash, f) or redis.call('GET', hash .. ':' .. f) or ''
  lens[n] = #out[n]
end
local meta = redis.call('HMGET', ARGV[1] .. 'meta', 'entries', 'generation')
return {table.concat(out), table.concat(lens, ','), meta[1] or '0', meta[2] or ''}
"""

# One group (cluster path): KEYS = [hash, large string of each field...], ARGV = fields.
_READ_GROUP = """
local out = {}
for i = 2, #KEYS do
  out[i - 1] = redis.call('HGET', KEYS[1], ARGV[i - 1]) or redis.call('GET', KEYS[i]) or ''
end
return out
"""


# Writer locks, one hash ``lshrs:{name}:locks``: field = stripe of ids, value =
# "token expiry_ms". KEYS[1] = the hash; ARGV = [token, ttl_ms, stripe...].
# All-or-nothing: returns 1 when every stripe was free (or expired, or ours)
# and is now held, else 0 and nothing changes. Redis TIME is the one clock.
_LOCK = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
for i = 3, #ARGV do
  local held = redis.call('HGET', KEYS[1], ARGV[i])
  if held then
    local owner, expiry = string.match(held, '^(%S+) (%d+)$')
    if owner ~= ARGV[1] and tonumber(expiry) > now_ms then return 0 end
  end
end
local value = ARGV[1] .. ' ' .. (now_ms + tonumber(ARGV[2]))
for i = 3, #ARGV do redis.call('HSET', KEYS[1], ARGV[i], value) end
return 1
"""

# Release the stripes this token holds. KEYS[1] = the hash; ARGV = [token, stripe...].
_UNLOCK = """
for i = 2, #ARGV do
  local held = redis.call('HGET', KEYS[1], ARGV[i])
  if held and string.match(held, '^(%S+) ') == ARGV[1] then redis.call('HDEL', KEYS[1], ARGV[i]) end
end
return 0
"""

_SCRIPTS = {
    "append_packed": _APPEND_PACKED,
    "lock": _LOCK,
    "unlock": _UNLOCK,
    "create": _CREATE_META,
    "replace": _REPLACE_META,
    "append": _APPEND,
    "remove": _REMOVE,
    "read_many": _READ_MANY,
    "read_group": _READ_GROUP,
}
# One pipelined round trip: (script name or command, keys, args) per call.
Call = tuple[str, list[Any], list[Any]]


_SHAS = {name: hashlib.sha1(source.encode()).hexdigest() for name, source in _SCRIPTS.items()}
_READS = frozenset({"read_many", "read_group"})


def _queue(pipe: Any, name: str, keys: list[Any], args: list[Any], by_sha: bool, **options: Any) -> None:
    """Queue one call, bypassing redis-py's script registry.

    A pipeline holding registered scripts first sends SCRIPT EXISTS, a
    second round trip on every query. Instead, writes go as EVAL with the
    script's body: EVAL cannot fail with NOSCRIPT part way through a pipeline,
    which could run a bucket's remove after its append, and redis-py refuses
    EVALSHA in cluster pipelines anyway (redis/redis-py#2914). The server
    caches the compiled body by its SHA, so the cost is a few hundred bytes
    per bucket group. Reads on a standalone server go by SHA (`by_sha`); they
    are idempotent, so a NOSCRIPT (a restarted server) reloads and retries.
    """
    if name not in _SCRIPTS:
        getattr(pipe, name)(*keys, *args)
    elif by_sha:
        pipe.execute_command("EVALSHA", _SHAS[name], len(keys), *keys, *args)
    else:
        pipe.execute_command("EVAL", _SCRIPTS[name], len(keys), *keys, *args, **options)


@dataclass(frozen=True)
class BucketWrites:
    """(table, code, id) entries sorted by table, code and id: what one write adds or removes."""

    tables: NDArray[np.int64]
    codes: NDArray[np.int64]
    ids: NDArray[np.int64]

    @property
    def entries(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class Layout:
    """How codes map to keys; fixed when the index is created."""

    id_bytes: int = 4
    num_bits: int = 14
    group_bits: int = DEFAULT_GROUP_BITS
    small_max: int = DEFAULT_SMALL_MAX


def server_layout(client: Any) -> tuple[int, int]:
    """(group_bits, small_max) that keep bucket groups in the server's compact hash encoding.

    Read from the server's hash-max-listpack-* (hash-max-ziplist-* before
    Redis 7) settings; the defaults where CONFIG is not allowed (managed Redis).
    """
    try:
        config = client.config_get("hash-max-*")
    except Exception:  # CONFIG disabled or renamed: Redis' own defaults are the best guess
        return DEFAULT_GROUP_BITS, DEFAULT_SMALL_MAX
    if not isinstance(config, dict):  # a cluster answers per node
        return DEFAULT_GROUP_BITS, DEFAULT_SMALL_MAX
    entries = int(config.get("hash-max-listpack-entries") or config.get("hash-max-ziplist-entries") or 128)
    value = int(config.get("hash-max-listpack-value") or config.get("hash-max-ziplist-value") or 64)
    group_bits = min(DEFAULT_GROUP_BITS, max(entries, 1).bit_length() - 1)
    return group_bits, min(DEFAULT_SMALL_MAX, value)


# What a bucket read returns: member ids of every bucket concatenated, each
# bucket's member count, the index's entry count and its generation.
Fetched = tuple[NDArray[np.int64], NDArray[np.int64], int, bytes]


def _unpack_many(replies: list[Any]) -> tuple[bytes, NDArray[np.int64], int, bytes]:
    """The reply of _READ_MANY: (members, byte size of each bucket, entry count, generation)."""
    blob, lengths, entries, generation = replies[0]
    sizes = np.array(lengths.split(b","), dtype=np.int64) if lengths else np.empty(0, np.int64)
    return blob, sizes, int(entries), generation or b""


def _definition_args(fields: Mapping[str, bytes | str | int]) -> list[bytes | str | int]:
    """A new meta hash as script arguments (key, value, ...), with a fresh generation.

    Every new definition (created, rebuilt, redefined) starts its generation
    at a random value, so a cleared and re-created index never repeats one
    and no process keeps sketches from before (sketch.py).
    """
    argv: list[bytes | str | int] = []
    for key, value in {**fields, "generation": secrets.randbits(62)}.items():
        argv += [key, value]
    return argv


class Buckets:
    """Bucket storage for one named index on one Redis (or Redis Cluster)."""

    def __init__(self, client: Any, name: str, layout: Layout | None = None) -> None:
        self.client = client
        self.name = name
        self.prefix = f"lshrs:{name}:".encode()
        self.meta_key = self.prefix + b"meta"
        self.lock_key = self.prefix + b"locks"
        self.layout = layout or Layout()
        self._cluster = hasattr(client, "get_nodes") and hasattr(client, "mget_nonatomic")
        self._scripts = {name: client.register_script(source) for name, source in _SCRIPTS.items()}
        self._async_factory: Callable[[], Any] | None = None
        # redis.asyncio clients belong to one event loop: one client (and its scripts) per loop
        self._async: weakref.WeakKeyDictionary[Any, tuple[Any, dict[str, Any]]] = weakref.WeakKeyDictionary()

    # -- running calls ----------------------------------------------------

    def bind_async(self, factory: Callable[[], Any]) -> None:
        """How to make a redis.asyncio client for the `a`-prefixed methods (called once per event loop)."""
        self._async_factory = factory

    def _run(self, calls: list[Call]) -> list[Any]:
        try:
            return self._run_once(calls)
        except NoScriptError:  # only reads go by SHA: load them and read again
            for name in _READS:
                self.client.script_load(_SCRIPTS[name])
            return self._run_once(calls)

    def _run_once(self, calls: list[Call]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for name, keys, args in calls:
            by_sha = name in _READS and not self._cluster
            # Naming the node spares redis-py's sync cluster pipeline a
            # COMMAND GETKEYS round trip per EVAL (redis-py 8.1).
            route = {"target_nodes": self.client.get_node_from_key(keys[0])} if self._cluster and keys else {}
            _queue(pipe, name, keys, args, by_sha, **route)
        return list(pipe.execute())

    async def _arun(self, calls: list[Call]) -> list[Any]:
        try:
            return await self._arun_once(calls)
        except NoScriptError:
            client, _ = self.async_client()
            for name in _READS:
                await client.script_load(_SCRIPTS[name])
            return await self._arun_once(calls)

    async def _arun_once(self, calls: list[Call]) -> list[Any]:
        client, _ = self.async_client()
        pipe = client.pipeline(transaction=False)
        for name, keys, args in calls:
            _queue(pipe, name, keys, args, name in _READS and not self._cluster)
        return list(await pipe.execute())

    def async_client(self) -> tuple[Any, dict[str, Any]]:
        """This event loop's redis.asyncio client and scripts, made on first use."""
        if self._async_factory is None:
            raise RuntimeError("no async Redis client: pass async_redis= to LSHRS")
        loop = asyncio.get_running_loop()
        found = self._async.get(loop)
        if found is None:
            client = self._async_factory()
            found = (client, {name: client.register_script(src) for name, src in _SCRIPTS.items()})
            self._async[loop] = found
        return found

    async def aclose(self) -> None:
        """Close this event loop's async client, if one was made."""
        found = self._async.pop(asyncio.get_running_loop(), None)
        if found is not None:
            await found[0].aclose()

    @property
    def id_bytes(self) -> int:
        return self.layout.id_bytes

    @property
    def _dtype(self) -> np.dtype:
        return np.dtype(f"<i{self.layout.id_bytes}")

    # -- metadata ---------------------------------------------------------

    def read_meta(self) -> dict[str, bytes]:
        """The meta hash as str -> raw bytes, empty when the index does not exist."""
        raw = self.client.hgetall(self.meta_key)
        return {k.decode(): v for k, v in raw.items()}

    def create_meta(self, fields: Mapping[str, bytes | str | int]) -> bool:
        """Create the meta hash unless it exists; True when this call created it."""
        return bool(self._scripts["create"](keys=[self.meta_key], args=_definition_args(fields)))

    def replace_meta(self, fields: Mapping[str, bytes | str | int]) -> None:
        """Replace the meta hash whole, atomically (a new index definition)."""
        self._scripts["replace"](keys=[self.meta_key], args=_definition_args(fields))

    def set_meta(self, **fields: bytes | str | int) -> None:
        self.client.hset(self.meta_key, mapping=fields)

    def next_ids(self, n: int) -> int:
        """Advance the id counter by n; returns its new value (the last id of the block)."""
        return int(self.client.hincrby(self.meta_key, "next_id", n))

    async def anext_ids(self, n: int) -> int:
        client, _ = self.async_client()
        return int(await client.hincrby(self.meta_key, "next_id", n))

    # -- writer locks -----------------------------------------------------

    def lock(self, stripes: list[int], token: str, ttl_ms: int) -> bool:
        """Take every stripe for `token` (all or none); False when another live writer holds one."""
        return bool(self._scripts["lock"](keys=[self.lock_key], args=[token, ttl_ms, *stripes]))

    async def alock(self, stripes: list[int], token: str, ttl_ms: int) -> bool:
        _, scripts = self.async_client()
        return bool(await scripts["lock"](keys=[self.lock_key], args=[token, ttl_ms, *stripes]))

    def unlock(self, stripes: list[int], token: str) -> None:
        self._scripts["unlock"](keys=[self.lock_key], args=[token, *stripes])

    async def aunlock(self, stripes: list[int], token: str) -> None:
        _, scripts = self.async_client()
        await scripts["unlock"](keys=[self.lock_key], args=[token, *stripes])

    def generation(self) -> bytes:
        """The index's generation: it moves whenever bucket entries are removed (a vector replaced or deleted)."""
        return self.client.hget(self.meta_key, "generation") or b""

    def entry_count(self) -> int:
        """Bucket entries written minus removed (each indexed id has one per table)."""
        value = self.client.hget(self.meta_key, "entries")
        return int(value or 0)

    # -- key names --------------------------------------------------------

    def _split(self, codes: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        bits = self.layout.group_bits
        return codes >> bits, codes & ((1 << bits) - 1)

    def _hash_key(self, table: int, group: int) -> bytes:
        return b"%sb:{%d.%d}" % (self.prefix, table, group)

    # -- writes -----------------------------------------------------------

    def group(self, ids: NDArray[np.int64], codes: NDArray[np.int64]) -> BucketWrites:
        """Group (id, table) entries by bucket, and buckets by key group.

        Args:
            ids: shape (n,).
            codes: shape (n, tables), from the hasher.
        """
        n, tables = codes.shape
        return self.group_entries(
            np.tile(np.arange(tables, dtype=np.int64), n), codes.reshape(-1), np.repeat(ids, tables)
        )

    def group_entries(
        self, table_idx: NDArray[np.int64], flat_codes: NDArray[np.int64], entry_ids: NDArray[np.int64]
    ) -> BucketWrites:
        """`group` for arbitrary (table, code, id) entries, e.g. the differences `repair()` fixes."""
        if len(entry_ids) < 2 or bool(np.all(entry_ids[1:] >= entry_ids[:-1])):
            # ids already ascending (a build's scan, a sorted batch): one stable sort by bucket
            order = np.argsort(table_idx << 32 | flat_codes, kind="stable")
        else:
            order = np.lexsort((entry_ids, flat_codes, table_idx))
        return BucketWrites(table_idx[order], flat_codes[order], entry_ids[order])

    def _bucket_runs(self, writes: BucketWrites) -> tuple[NDArray[Any], ...]:
        """Per distinct bucket: table, group, field, the byte range of its ids in the packed ids, and
        whether it opens a new bucket group (a hash key)."""
        t, c = writes.tables, writes.codes
        starts = np.flatnonzero(np.r_[True, (t[1:] != t[:-1]) | (c[1:] != c[:-1])])
        bounds = np.r_[starts, len(t)] * self.layout.id_bytes
        tables = t[starts]
        grp, field = self._split(c[starts])
        new_group = np.r_[True, (tables[1:] != tables[:-1]) | (grp[1:] != grp[:-1])]
        return tables, grp, field, bounds[:-1], bounds[1:], new_group

    def _script_groups(self, writes: BucketWrites) -> list[tuple[list[bytes], list[bytes]]]:
        """Per bucket group: the keys and (field, ids) arguments of the per-bucket scripts (removes, clusters)."""
        packed = writes.ids.astype(self._dtype).tobytes()
        tables, grp, field, lo, hi, new_group = self._bucket_runs(writes)
        groups: list[tuple[list[bytes], list[bytes]]] = []
        keys: list[bytes] = []
        args: list[bytes] = []
        hash_key = b""
        for first, t, g, f, a, b in zip(*(c.tolist() for c in (new_group, tables, grp, field, lo, hi))):
            if first:
                hash_key = self._hash_key(t, g)
                keys, args = [hash_key], []
                groups.append((keys, args))
            keys.append(b"%s:%d" % (hash_key, f))
            args += [b"%d" % f, packed[a:b]]
        return groups

    def _packed_appends(self, writes: BucketWrites) -> list[list[bytes]]:
        """ARGV of the packed append script, about `_PACKED_BUCKETS` buckets per call.

        Six arguments per call instead of three per bucket: redis-py's
        Python command packing of about a million arguments was half of a
        122k-vector build (benchmarks/results/compare.md).
        """
        packed = writes.ids.astype(self._dtype).tobytes()
        tables, grp, field, lo, hi, new_group = self._bucket_runs(writes)
        group_starts = np.flatnonzero(new_group)
        group_sizes = np.diff(np.r_[group_starts, len(tables)])
        lengths = (hi - lo).astype("<u4")
        calls: list[list[bytes]] = []
        first_group = 0
        while first_group < len(group_starts):
            last_group = int(np.searchsorted(group_starts, group_starts[first_group] + _PACKED_BUCKETS))
            last_group = max(last_group, first_group + 1)
            a = int(group_starts[first_group])
            b = int(group_starts[last_group]) if last_group < len(group_starts) else len(tables)
            picked = group_starts[first_group:last_group]
            tags = b" ".join(
                b"%d.%d:%d" % row
                for row in zip(
                    tables[picked].tolist(), grp[picked].tolist(), group_sizes[first_group:last_group].tolist()
                )
            )
            calls.append(
                [
                    b"%d" % self.layout.small_max,
                    self.prefix,
                    tags,
                    field[a:b].astype(np.uint8).tobytes(),
                    lengths[a:b].tobytes(),
                    packed[int(lo[a]) : int(hi[b - 1])],
                ]
            )
            first_group = last_group
        return calls

    def apply(self, add: BucketWrites | None = None, remove: BucketWrites | None = None) -> int:
        """Remove then append entries in one pipeline; returns entries removed.

        Removal runs first so an id re-added to the bucket it already sits in
        ends up there exactly once.
        """
        calls, n_remove = self._apply_calls(add, remove)
        removed = int(sum(self._run(calls)[:n_remove]))
        if removed:
            self.client.hincrby(self.meta_key, "entries", -removed)
        return removed

    async def aapply(self, add: BucketWrites | None = None, remove: BucketWrites | None = None) -> int:
        calls, n_remove = self._apply_calls(add, remove)
        removed = int(sum((await self._arun(calls))[:n_remove]))
        if removed:
            client, _ = self.async_client()
            await client.hincrby(self.meta_key, "entries", -removed)
        return removed

    def _apply_calls(self, add: BucketWrites | None, remove: BucketWrites | None) -> tuple[list[Call], int]:
        calls: list[Call] = []
        for keys, args in self._script_groups(remove) if remove is not None else []:
            calls.append(("remove", keys, [self.layout.id_bytes, *args]))
        n_remove = len(calls)
        if n_remove:  # tells every process's sketch cache that a vector may have changed (sketch.py)
            calls.append(("hincrby", [self.meta_key], ["generation", 1]))
        if add is not None and (self._cluster or self.layout.group_bits > 8):  # packed fields are one byte
            calls += [("append", keys, [self.layout.small_max, *args]) for keys, args in self._script_groups(add)]
        elif add is not None:
            calls += [("append_packed", [], argv) for argv in self._packed_appends(add)]
        if add is not None:
            # the added count is known up front, so it rides in the same pipeline
            calls.append(("hincrby", [self.meta_key], ["entries", add.entries]))
        return calls, n_remove

    # -- reads ------------------------------------------------------------

    def fetch(self, tables: NDArray[np.int64], codes: NDArray[np.int64]) -> Fetched:
        """Read the buckets (tables[i], codes[i]) in one round trip (one per shard on a cluster).

        Returns:
            The concatenated member ids of all buckets, each bucket's member
            count, and the index's entry count and generation read in the same trip.
        """
        calls, parse = self._fetch_calls(tables, codes)
        return self._members(parse(self._run(calls)))

    async def afetch(self, tables: NDArray[np.int64], codes: NDArray[np.int64]) -> Fetched:
        calls, parse = self._fetch_calls(tables, codes)
        return self._members(parse(await self._arun(calls)))

    def _fetch_calls(
        self, tables: NDArray[np.int64], codes: NDArray[np.int64]
    ) -> tuple[list[Call], Callable[[list[Any]], tuple[bytes, NDArray[np.int64], int, bytes]]]:
        """The calls that read the buckets, and how to parse their replies (members, sizes, count, generation)."""
        grp, field = self._split(codes)
        if not self._cluster:
            tokens = " ".join(map("%d.%d.%d".__mod__, zip(tables.tolist(), grp.tolist(), field.tolist())))
            return [("read_many", [], [self.prefix, tokens])], _unpack_many
        # Redis Cluster: one single-slot script per bucket group, pipelined; the entry count last.
        by_group: dict[tuple[int, int], list[int]] = {}
        for i, key in enumerate(zip(tables.tolist(), grp.tolist())):
            by_group.setdefault(key, []).append(i)
        fields = field.tolist()
        calls: list[Call] = []
        for (t, g), members in by_group.items():
            hash_key = self._hash_key(t, g)
            keys = [hash_key] + [b"%s:%d" % (hash_key, fields[i]) for i in members]
            calls.append(("read_group", keys, [fields[i] for i in members]))
        calls.append(("hmget", [self.meta_key], ["entries", "generation"]))

        def parse(replies: list[Any]) -> tuple[bytes, NDArray[np.int64], int, bytes]:
            blobs: list[bytes] = [b""] * len(fields)
            for members, values in zip(by_group.values(), replies):
                for i, value in zip(members, values):
                    blobs[i] = value
            sizes = np.fromiter(map(len, blobs), dtype=np.int64, count=len(blobs))
            entries, generation = replies[-1]
            return b"".join(blobs), sizes, int(entries or 0), generation or b""

        return calls, parse

    def _members(self, packed: tuple[bytes, NDArray[np.int64], int, bytes]) -> Fetched:
        blob, sizes, entries, generation = packed
        ids = np.frombuffer(blob, dtype=self._dtype).astype(np.int64)
        return ids, sizes // self.layout.id_bytes, entries, generation

    # -- housekeeping -----------------------------------------------------

    def members(self) -> Iterator[tuple[int, int, NDArray[np.int64]]]:
        """Every bucket as (table, code, ids): a full SCAN, for checks and repair."""
        bits = self.layout.group_bits
        for key in self._scan(self.prefix + b"b:*"):
            tag, _, field = key[len(self.prefix) + 3 :].partition(b"}:")
            table, group = (int(x) for x in tag.strip(b"{}").split(b"."))
            if field:
                value = self.client.get(key)
                values = {int(field): value} if value else {}
            else:
                values = {int(f): v for f, v in self.client.hgetall(key).items()}
            for f, blob in values.items():
                yield table, group << bits | f, np.frombuffer(blob, dtype=self._dtype).astype(np.int64)

    def clear(self) -> int:
        """Unlink every key of this index; returns how many were removed."""
        return self._unlink_matching(self.prefix + b"*")

    def drop_buckets(self) -> int:
        """Unlink the bucket keys only: the meta hash, locks and job checkpoints stay."""
        return self._unlink_matching(self.prefix + b"b:*")

    def _unlink_matching(self, match: bytes) -> int:
        removed = 0
        batch: list[bytes] = []
        for key in self._scan(match):
            batch.append(key)
            if len(batch) >= _SCAN_COUNT:
                removed += self._unlink(batch)
                batch = []
        removed += self._unlink(batch)
        return removed

    def _scan(self, match: bytes) -> Iterator[bytes]:
        yield from self.client.scan_iter(match=match, count=_SCAN_COUNT)

    def _unlink(self, keys: list[bytes]) -> int:
        if not keys:
            return 0
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.unlink(key)
        return int(sum(pipe.execute()))

    def bucket_sizes(self) -> NDArray[np.int64]:
        """Member count of every bucket (pipelined HVALS / STRLEN over a SCAN)."""
        sizes: list[int] = []
        batch: list[bytes] = []
        for key in self._scan(self.prefix + b"b:*"):
            batch.append(key)
            if len(batch) >= _SCAN_COUNT:
                sizes += self._lengths(batch)
                batch = []
        sizes += self._lengths(batch)
        return np.array(sizes, dtype=np.int64) // self.layout.id_bytes

    def _lengths(self, keys: list[bytes]) -> list[int]:
        if not keys:
            return []
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            if key.endswith(b"}"):
                pipe.hvals(key)
            else:
                pipe.strlen(key)
        lengths: list[int] = []
        for value in pipe.execute():
            lengths += [len(v) for v in value] if isinstance(value, list) else [int(value)]
        return lengths
