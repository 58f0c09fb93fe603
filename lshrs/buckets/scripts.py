"""The Lua scripts behind the bucket layout, and how a pipeline queues them.

Part of the buckets package: these scripts build key names from the index's
prefix, so they live beside the `Buckets` class and nowhere else.
"""

from __future__ import annotations

import hashlib
from typing import Any

from lshrs.definition import ENTRIES, GENERATION

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

# Every bucket write runs at most once. redis-py re-sends a whole pipeline
# when the connection drops before the replies arrive (its default retry),
# and an append is not idempotent: each write script takes a "once" key,
# unique to its call, in the slot of the keys it writes (KEYS[1], with its
# time to live in ms as ARGV[1]). A call that finds its once key already set
# is a re-send: it changes nothing and returns what the first run returned.
_ONCE_BEGIN = """
local seen = redis.call('GET', KEYS[1])
if seen then return tonumber(seen) end
"""
_ONCE_END = """
redis.call('SET', KEYS[1], result, 'PX', ARGV[1])
return result
"""


def _once(body: str) -> str:
    """A write script that runs at most once per once key; `body` sets the local `result` (a number)."""
    return _ONCE_BEGIN + "local result = 0\n" + body + _ONCE_END


def _counted(body: str, delta: str) -> str:
    """`body` (looping over KEYS[3..LAST]) as a standalone write that also keeps the entry counter.

    KEYS gains the meta hash as its last key. The counter moves in the same
    script as the entries, so a client killed part way through a pipeline
    leaves them in step: with the counter as a separate call after the
    pipeline, a delete killed between the two left count() too high for
    good (a rerun removes nothing more, so it decrements nothing). A cluster
    cannot do this (the meta hash is in another slot); there the counter
    stays a separate call, and a build's recount or repair() mends it.
    """
    tail = f"""
local delta = {delta}
if delta ~= 0 and redis.call('EXISTS', KEYS[#KEYS]) == 1 then
  redis.call('HINCRBY', KEYS[#KEYS], '{ENTRIES}', delta)
  if delta < 0 then redis.call('HINCRBY', KEYS[#KEYS], '{GENERATION}', 1) end
end
"""
    return _once(body.replace("LAST", "#KEYS - 1") + tail)


# One group: KEYS = [once, hash, large string of each field...],
# ARGV = [ttl, small_max, field1, ids1, field2, ids2, ...]. Appends packed ids to
# each bucket, moving a bucket to its string once it outgrows small_max.
# (Counted: ARGV ends with the number of entries appended.)
_APPEND_BODY = """
local limit = tonumber(ARGV[2])
for i = 3, LAST do
  local field, add = ARGV[2 * i - 3], ARGV[2 * i - 2]
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('APPEND', KEYS[i], add)
  else
    local value = (redis.call('HGET', KEYS[2], field) or '') .. add
    if #value > limit then
      redis.call('HDEL', KEYS[2], field)
      redis.call('SET', KEYS[i], value)
    else
      redis.call('HSET', KEYS[2], field, value)
    end
  end
end
"""
_APPEND = _once(_APPEND_BODY.replace("LAST", "#KEYS"))
_APPEND_COUNTED = _counted(_APPEND_BODY, "tonumber(ARGV[#ARGV])")

# Standalone Redis only (it builds key names): _APPEND for many groups in one
# call, counted. KEYS = [once, meta hash]; ARGV = [ttl, small_max, the index's key prefix,
# "table.group:buckets" tokens separated by spaces, one byte per bucket with its field, a
# little-endian uint32 per bucket with its byte length, every bucket's ids
# concatenated, the number of entries]. A bucket is read from its group hash first, where nearly all
# of them live, and from its own string only when the hash lacks it.
_APPEND_PACKED = _counted(
    """
local limit, prefix, fields, lengths, ids = tonumber(ARGV[2]), ARGV[3], ARGV[5], ARGV[6], ARGV[7]
local b, pos = 0, 1
for tag, n in string.gmatch(ARGV[4], '(%d+%.%d+):(%d+)') do
  local hash = prefix .. 'b:{' .. tag .. '}'
  for _ = 1, tonumber(n) do
    b = b + 1
    local f = string.byte(fields, b)
    local l1, l2, l3, l4 = string.byte(lengths, 4 * b - 3, 4 * b)
    local size = l1 + 256 * (l2 + 256 * (l3 + 256 * l4))
    local add = string.sub(ids, pos, pos + size - 1)
    pos = pos + size
    local small = redis.call('HGET', hash, f)
    if (not small) and redis.call('EXISTS', hash .. ':' .. f) == 1 then
      redis.call('APPEND', hash .. ':' .. f, add)
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
""",
    "tonumber(ARGV[8])",
)

# One group: KEYS as _APPEND, ARGV = [ttl, id width, entry width, field1, ids1, ...]
# (an entry is an id, then its ranking code where the index keeps codes).
# Drops every entry whose id is one of the given ids (compared at aligned
# offsets) and deletes buckets left empty. Returns how many entries were removed.
# (Counted: the counter moves by what was removed.)
_REMOVE_BODY = """
local width, stride = tonumber(ARGV[2]), tonumber(ARGV[3])
local removed = 0
for i = 3, LAST do
  local field, ids = ARGV[2 * i - 2], ARGV[2 * i - 1]
  local large = true
  local blob = redis.call('GET', KEYS[i])
  if not blob then
    large = false
    blob = redis.call('HGET', KEYS[2], field)
  end
  if blob then
    local drop = {}
    for j = 1, #ids, width do drop[string.sub(ids, j, j + width - 1)] = true end
    local keep, before = {}, removed
    for j = 1, #blob, stride do
      if drop[string.sub(blob, j, j + width - 1)] then
        removed = removed + 1
      else
        keep[#keep + 1] = string.sub(blob, j, j + stride - 1)
      end
    end
    if removed > before then
      local rest = table.concat(keep)
      if large and #rest > 0 then redis.call('SET', KEYS[i], rest)
      elseif large then redis.call('DEL', KEYS[i])
      elseif #rest > 0 then redis.call('HSET', KEYS[2], field, rest)
      else redis.call('HDEL', KEYS[2], field) end
    end
  end
end
result = removed
"""
_REMOVE = _once(_REMOVE_BODY.replace("LAST", "#KEYS"))
_REMOVE_COUNTED = _counted(_REMOVE_BODY, "-removed")

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
local meta = redis.call('HMGET', ARGV[1] .. 'meta', 'ENTRIES', 'GENERATION')
return {table.concat(out), table.concat(lens, ','), meta[1] or '0', meta[2] or ''}
""".replace("ENTRIES", ENTRIES).replace("GENERATION", GENERATION)

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
# and is now held, else 0, and the field "waiting" records that a writer
# waited (index() lets writers in between its chunks). Redis TIME is the one clock.
_LOCK = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
for i = 3, #ARGV do
  local held = redis.call('HGET', KEYS[1], ARGV[i])
  if held then
    local owner, expiry = string.match(held, '^(%S+) (%d+)$')
    if owner ~= ARGV[1] and tonumber(expiry) > now_ms then
      redis.call('HSET', KEYS[1], 'waiting', now_ms)
      return 0
    end
  end
end
local value = ARGV[1] .. ' ' .. (now_ms + tonumber(ARGV[2]))
for i = 3, #ARGV do redis.call('HSET', KEYS[1], ARGV[i], value) end
return 1
"""

# Extend the stripes this token still holds. KEYS[1] = the hash; ARGV = [token, ttl_ms, stripe...].
# Returns 0, extending nothing, when any of them is no longer the token's: unlike
# _LOCK it never takes a free stripe, so a heartbeat's renewal that arrives after
# its writer's unlock (on another connection) cannot hold the ids again.
_RENEW = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
for i = 3, #ARGV do
  local held = redis.call('HGET', KEYS[1], ARGV[i])
  if not held or string.match(held, '^(%S+) ') ~= ARGV[1] then return 0 end
end
local value = ARGV[1] .. ' ' .. (now_ms + tonumber(ARGV[2]))
for i = 3, #ARGV do redis.call('HSET', KEYS[1], ARGV[i], value) end
return 1
"""

# One key, the locks hash: whether a writer waited since the last call (and forget it).
_WAITED = """
return redis.call('HDEL', KEYS[1], 'waiting')
"""

# Release the stripes this token holds. KEYS[1] = the hash; ARGV = [token, stripe...].
_UNLOCK = """
for i = 2, #ARGV do
  local held = redis.call('HGET', KEYS[1], ARGV[i])
  if held and string.match(held, '^(%S+) ') == ARGV[1] then redis.call('HDEL', KEYS[1], ARGV[i]) end
end
return 0
"""

# One key: a write to the meta hash (HINCRBY or HSET) only while the hash exists, so a
# writer that outlives a clear() (or a Redis that lost the index) never re-creates a
# meta hash holding counters only, which no process could open. KEYS[1] = the meta
# hash; ARGV = [command, field, value, ...]. Returns the command's reply, or nil.
_IF_META = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
return redis.call(ARGV[1], KEYS[1], unpack(ARGV, 2))
"""

# The entry counter, at most once per once key: KEYS = [meta hash, once], ARGV =
# [ttl, field, delta]. Nil (as _IF_META) when the meta hash is gone.
_COUNT_ONCE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local seen = redis.call('GET', KEYS[2])
if seen then return tonumber(seen) end
local result = redis.call('HINCRBY', KEYS[1], ARGV[2], ARGV[3])
redis.call('SET', KEYS[2], result, 'PX', ARGV[1])
return result
"""

SCRIPTS = {
    "if_meta": _IF_META,
    "count_once": _COUNT_ONCE,
    "append_packed": _APPEND_PACKED,
    "lock": _LOCK,
    "renew": _RENEW,
    "unlock": _UNLOCK,
    "waited": _WAITED,
    "create": _CREATE_META,
    "replace": _REPLACE_META,
    "append": _APPEND,
    "append_counted": _APPEND_COUNTED,
    "remove": _REMOVE,
    "remove_counted": _REMOVE_COUNTED,
    "read_many": _READ_MANY,
    "read_group": _READ_GROUP,
}
# One pipelined round trip: (script name or command, keys, args) per call.
Call = tuple[str, list[Any], list[Any]]


SHAS = {name: hashlib.sha1(source.encode()).hexdigest() for name, source in SCRIPTS.items()}
READS = frozenset({"read_many", "read_group"})


def queue(pipe: Any, name: str, keys: list[Any], args: list[Any], by_sha: bool, **options: Any) -> None:
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
    if name not in SCRIPTS:
        getattr(pipe, name)(*keys, *args)  # redis-py's own method: its reply callback and key options
    else:
        pipe.execute_command(*command(name, keys, args, by_sha), **({} if by_sha else options))


def command(name: str, keys: list[Any], args: list[Any], by_sha: bool) -> list[Any]:
    """One call as the argument list `queue` would send (wire.exchange): a script by body or SHA, or MGET/HMGET."""
    if name not in SCRIPTS:
        if name not in ("mget", "hmget"):  # commands whose raw reply is what redis-py's method returns
            raise ValueError(f"command: {name} needs redis-py's response callback; queue it on a pipeline")
        return [name.upper(), *keys, *args]
    if by_sha:
        return ["EVALSHA", SHAS[name], len(keys), *keys, *args]
    return ["EVAL", SCRIPTS[name], len(keys), *keys, *args]
