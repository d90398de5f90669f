"""Lua scripts of the Redis broker (:mod:`hubbub.hub.brokers.redis_broker`).

Each script runs atomically inside Redis, which is what makes offsets the same
for every node: the epoch check, the offset increment, the append, the trim and
the live ``PUBLISH`` of an entry happen as one step, so the order in which
entries reach the pub/sub subscribers is their offset order.

Keys of one stream share the hash tag ``{STREAM}`` (``hubbub:{chat:lobby}:log``)
so that a stream's multi-key scripts touch a single Redis Cluster slot. The
presence scripts of the reserved ``$online`` stream also update the per-user key
``hubbub:{$online:USER}:conns``, which is a second slot: on a Cluster they need
the hub's online index kept elsewhere (see docs/redis.md).

Stream entries have the ID ``OFFSET-0`` (Redis stream IDs must only grow,
which offsets do), and the fields ``t`` (time, seconds), ``s`` (sender, JSON)
and ``d`` (data, JSON). The stream's metadata hash holds ``epoch``, ``top``
(the last offset assigned) and the limits of the last publish (``max_len``,
``max_age``) so that reads trim by age as publishes do.
"""

from __future__ import annotations

__all__ = ["ACK", "ONLINE", "PRESENCE", "PRESENCE_ADD", "PRESENCE_REMOVE", "PUBLISH", "READ"]

# Shared helpers: create the stream's epoch if missing; drop entries whose time
# is at or before now - max_age (StreamLimits semantics).
_COMMON = """
local function ensure(meta, log, epoch, idle_ms)
  local current = redis.call('HGET', meta, 'epoch')
  if current then return current, false end
  -- No metadata: the stream is new or Redis lost it. Any log left without
  -- its metadata belongs to a lost epoch.
  redis.call('DEL', log)
  redis.call('HSET', meta, 'epoch', epoch, 'top', 0, 'max_len', 100, 'max_age', '300')
  redis.call('PEXPIRE', meta, idle_ms)
  return epoch, true
end

local function field(entry, name)
  local kv = entry[2]
  for i = 1, #kv, 2 do
    if kv[i] == name then return kv[i + 1] end
  end
  return nil
end

local function trim_age(log, now, max_age)
  if max_age == nil or max_age == '' then return end
  local oldest = tonumber(now) - tonumber(max_age)
  while true do
    local batch = redis.call('XRANGE', log, '-', '+', 'COUNT', 64)
    if #batch == 0 then return end
    for _, entry in ipairs(batch) do
      if tonumber(field(entry, 't')) > oldest then
        redis.call('XTRIM', log, 'MINID', entry[1])
        return
      end
    end
    local last = tonumber(string.match(batch[#batch][1], '^(%d+)'))
    redis.call('XTRIM', log, 'MINID', (last + 1) .. '-0')
  end
end
"""

#: KEYS: meta, log. ARGV: new epoch, now, data JSON, sender JSON, max_len,
#: max_age ('' for none), idle ms, pub/sub channel. Returns {offset, epoch}.
PUBLISH = (
    _COMMON
    + """
local meta, log = KEYS[1], KEYS[2]
local now, max_len, max_age, idle_ms = ARGV[2], tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[7])
local epoch = ensure(meta, log, ARGV[1], idle_ms)
local top = redis.call('HINCRBY', meta, 'top', 1)
redis.call('HSET', meta, 'max_len', max_len, 'max_age', max_age)
redis.call('XADD', log, 'MAXLEN', max_len, top .. '-0', 't', now, 's', ARGV[4], 'd', ARGV[3])
trim_age(log, now, max_age)
-- Expiry mirrors the memory broker's idle drop: a stream that can hold
-- nothing any more is forgotten after idle_ms (a new epoch when reused).
if max_len == 0 then
  redis.call('PEXPIRE', meta, idle_ms)
  redis.call('DEL', log)
elseif max_age == '' then
  redis.call('PERSIST', meta)
  redis.call('PERSIST', log)
else
  local ttl = math.floor(tonumber(max_age) * 1000) + idle_ms
  redis.call('PEXPIRE', meta, ttl)
  redis.call('PEXPIRE', log, ttl)
end
redis.call('PUBLISH', ARGV[8], '{"o":' .. top .. ',"e":"' .. epoch .. '","t":' .. now
  .. ',"s":' .. ARGV[4] .. ',"d":' .. ARGV[3] .. '}')
return {top, epoch}
"""
)

#: KEYS: meta, log. ARGV: new epoch, now, after ('' for the newest), limit,
#: idle ms. Returns {epoch, top, complete (0/1), entries, newest_first (0/1)}.
READ = (
    _COMMON
    + """
local meta, log = KEYS[1], KEYS[2]
local now, after, limit = ARGV[2], ARGV[3], tonumber(ARGV[4])
local epoch = ensure(meta, log, ARGV[1], tonumber(ARGV[5]))
local top = tonumber(redis.call('HGET', meta, 'top'))
trim_age(log, now, redis.call('HGET', meta, 'max_age'))
if after == '' then
  if limit == 0 then return {epoch, top, 1, {}, 0} end
  return {epoch, top, 1, redis.call('XREVRANGE', log, '+', '-', 'COUNT', limit), 1}
end
after = tonumber(after)
if after > top then return {epoch, top, 0, {}, 0} end
local head = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)
local first = top + 1
if #head > 0 then first = tonumber(string.match(head[1][1], '^(%d+)')) end
local complete = 0
if after + 1 >= first then complete = 1 end
local entries = {}
if limit > 0 then
  entries = redis.call('XRANGE', log, (after + 1) .. '-0', '+', 'COUNT', limit)
end
return {epoch, top, complete, entries, 0}
"""
)

#: KEYS: the per-user ``$online`` sorted sets. ARGV: ``(NOW`` (exclusive
#: minimum score). Returns the number of live connections of each user: one
#: command for ``online`` of many users, where a pipeline of ZCOUNTs would be
#: one reply each.
ONLINE = """
local counts = {}
for i, key in ipairs(KEYS) do
  counts[i] = redis.call('ZCOUNT', key, ARGV[1], '+inf')
end
return counts
"""

#: KEYS: ack hash. ARGV: offset, epoch. Returns the {offset, epoch} kept.
ACK = """
local cur = redis.call('HMGET', KEYS[1], 'o', 'e')
if not cur[1] or cur[2] ~= ARGV[2] or tonumber(ARGV[1]) > tonumber(cur[1]) then
  redis.call('HSET', KEYS[1], 'o', ARGV[1], 'e', ARGV[2])
  return {ARGV[1], ARGV[2]}
end
return {cur[1], cur[2]}
"""

_ONLINE_KEY = """
local function online_key(prefix, info)
  return prefix .. '{$online:' .. cjson.decode(info)['u'] .. '}:conns'
end
"""

#: KEYS: zset, info hash. ARGV: conn, expires, info JSON, key ttl ms, online
#: prefix ('' unless the stream is $online), touch ('1': refresh an existing
#: entry only, its info read from the hash).
PRESENCE_ADD = (
    _ONLINE_KEY
    + """
local zset, info = KEYS[1], KEYS[2]
local conn, expires, text, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
if ARGV[6] == '1' then
  if not redis.call('ZSCORE', zset, conn) then return 0 end
  text = redis.call('HGET', info, conn)
  if not text then return 0 end
end
redis.call('ZADD', zset, expires, conn)
redis.call('HSET', info, conn, text)
redis.call('PEXPIRE', zset, ttl)
redis.call('PEXPIRE', info, ttl)
if ARGV[5] ~= '' then
  local key = online_key(ARGV[5], text)
  redis.call('ZADD', key, expires, conn)
  redis.call('PEXPIRE', key, ttl)
end
return 1
"""
)

#: KEYS: zset, info hash. ARGV: conn, online prefix ('' unless $online).
PRESENCE_REMOVE = (
    _ONLINE_KEY
    + """
local text = redis.call('HGET', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
if text and ARGV[2] ~= '' then
  redis.call('ZREM', online_key(ARGV[2], text), ARGV[1])
end
return 1
"""
)

#: KEYS: zset, info hash. ARGV: now, online prefix. Drops expired entries;
#: returns {conn, info JSON, conn, info JSON, ...} of the live ones.
PRESENCE = (
    _ONLINE_KEY
    + """
local zset, info, now = KEYS[1], KEYS[2], ARGV[1]
local dead = redis.call('ZRANGEBYSCORE', zset, '-inf', now)
for _, conn in ipairs(dead) do
  local text = redis.call('HGET', info, conn)
  if text and ARGV[2] ~= '' then redis.call('ZREM', online_key(ARGV[2], text), conn) end
  redis.call('HDEL', info, conn)
end
redis.call('ZREMRANGEBYSCORE', zset, '-inf', now)
local live = redis.call('ZRANGE', zset, 0, -1)
local result = {}
for _, conn in ipairs(live) do
  local text = redis.call('HGET', info, conn)
  if text then
    table.insert(result, conn)
    table.insert(result, text)
  end
end
return result
"""
)
