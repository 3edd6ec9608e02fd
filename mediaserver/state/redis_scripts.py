"""The Redis store's Lua scripts: the prelude every script runs after (``P``, the
``KEY_*`` functions of ``redis_keys``, ``val``, the link indexes and the outbox append)
and the scripts by name, as ``RedisStoreBase.open`` registers them.

The scripts build key names from the prefix (``ARGV[1]``) with the layout of
``redis_keys``; the management scripts are in ``redis_manage``.
"""

from __future__ import annotations

from . import redis_manage
from .redis_keys import lua_key_functions

__all__ = ["LUA_PRELUDE", "SCRIPTS", "WRITE_SCRIPTS"]

LUA_PRELUDE = (
    "local P = ARGV[1]\n"
    + lua_key_functions()
    + """
local function val(v)
  if v == nil or v == cjson.null then return nil end
  return v
end
local function link_indexes(d)
  local keys = {KEY_TENANT_LINKS(d.tenant_id)}
  if val(d.event_id) then table.insert(keys, KEY_LINKS_BY_EVENT(d.tenant_id, d.event_id)) end
  if val(d.calendar_id) then
    table.insert(keys, KEY_LINKS_BY_CALENDAR(d.tenant_id, d.calendar_id))
  end
  if val(d.user_id) then table.insert(keys, KEY_LINKS_BY_USER(d.tenant_id, d.user_id)) end
  return keys
end
-- The outbox append shared by enqueue_events, create_link and update_link. ``items`` is
-- [{"id", "tenant_id", "endpoint_id", "ordering_key", "next", "delivered"}] and
-- ARGV[first + i - 1] is item i's JSON without "seq" (written by Python; only the seq is
-- spliced in here, so its numbers round-trip). A script calls outbox_check before any of
-- its writes (a script's writes are not rolled back), then outbox_write.
local function outbox_check(items)
  local seen = {}
  for _, it in ipairs(items) do
    if seen[it.id] or redis.call('EXISTS', KEY_OUTBOX(it.id)) == 1 then
      return 'outbox event exists: ' .. it.id
    end
    seen[it.id] = true
  end
  return nil
end
local function outbox_write(items, first)
  local seqs = {}
  for i, it in ipairs(items) do
    local seq = redis.call('INCR', KEY_OUTBOX_SEQ())
    local body = ARGV[first + i - 1]
    redis.call('SET', KEY_OUTBOX(it.id), '{"seq":' .. seq .. ',' .. string.sub(body, 2))
    redis.call('ZADD', KEY_TENANT_OUTBOX(it.tenant_id), seq, it.id)
    if not it.delivered then
      local q = KEY_QUEUE(it.endpoint_id, it.ordering_key)
      redis.call('ZADD', q, seq, it.id)
      redis.call('ZADD', KEY_TENANT_PENDING(it.tenant_id), seq, it.id)
      if redis.call('ZRANGE', q, 0, 0)[1] == it.id then
        redis.call('ZADD', KEY_DUE(), it.next, it.id)
      end
    end
    table.insert(seqs, seq)
  end
  return seqs
end
"""
)

# ARGV[2]: {"key", "member", "unique": [[hash, field]], "index": [[zset, score]]};
# ARGV[3]: the record's JSON. Stores it unless the key or a unique field exists.
LUA_INSERT = """
local s = cjson.decode(ARGV[2])
if redis.call('EXISTS', s.key) == 1 then return {'conflict', 'id exists'} end
for _, u in ipairs(s.unique) do
  if redis.call('HEXISTS', u[1], u[2]) == 1 then return {'conflict', 'duplicate ' .. u[2]} end
end
redis.call('SET', s.key, ARGV[3])
for _, u in ipairs(s.unique) do redis.call('HSET', u[1], u[2], s.member) end
for _, z in ipairs(s.index) do redis.call('ZADD', z[1], z[2], s.member) end
return {'ok'}
"""

# ARGV[2]: zset key, ARGV[3]: record key prefix (+ member = record key),
# ARGV[4]: "1" for newest first, ARGV[5]: limit (-1: all). The records' JSON, in order.
LUA_LIST = """
local stop = tonumber(ARGV[5])
if stop >= 0 then stop = stop - 1 end
local members
if ARGV[4] == '1' then
  members = redis.call('ZRANGE', ARGV[2], 0, stop, 'REV')
else
  members = redis.call('ZRANGE', ARGV[2], 0, stop)
end
local out = {}
for _, m in ipairs(members) do
  local j = redis.call('GET', ARGV[3] .. m)
  if j then table.insert(out, j) end
end
return out
"""

# ARGV[2]: {"id", "tenant_id", "slug", "host_slug", "natural_key", "idempotency_key",
# "event_id", "calendar_id", "user_id", "score"}; ARGV[3]: the link's JSON; ARGV[4]: the
# outbox items and ARGV[5..] their JSON (see outbox_check), enqueued only if created.
LUA_CREATE_LINK = """
local a = cjson.decode(ARGV[2])
if val(a.idempotency_key) then
  local id = redis.call('HGET', KEY_IDEMPOTENCY_KEYS(a.tenant_id), a.idempotency_key)
  if id then return {'existing', redis.call('GET', KEY_LINK(id))} end
end
if val(a.natural_key) then
  local id = redis.call('HGET', KEY_NATURAL_KEYS(a.tenant_id), a.natural_key)
  if id then return {'existing', redis.call('GET', KEY_LINK(id))} end
end
if redis.call('EXISTS', KEY_LINK(a.id)) == 1 then return {'conflict', 'link id exists'} end
if a.slug == a.host_slug then return {'conflict', 'slug and host_slug must differ'} end
if redis.call('HEXISTS', KEY_SLUGS(), a.slug) == 1
    or redis.call('HEXISTS', KEY_SLUGS(), a.host_slug) == 1 then
  return {'conflict', 'slug in use'}
end
local items = cjson.decode(ARGV[4])
local err = outbox_check(items)
if err then return {'conflict', err} end
redis.call('SET', KEY_LINK(a.id), ARGV[3])
redis.call('HSET', KEY_SLUGS(), a.slug, a.id, a.host_slug, a.id)
if val(a.idempotency_key) then
  redis.call('HSET', KEY_IDEMPOTENCY_KEYS(a.tenant_id), a.idempotency_key, a.id)
end
if val(a.natural_key) then
  redis.call('HSET', KEY_NATURAL_KEYS(a.tenant_id), a.natural_key, a.id)
end
for _, k in ipairs(link_indexes(a)) do redis.call('ZADD', k, a.score, a.id) end
redis.call('ZADD', KEY_TENANT_LINK_UPDATES(a.tenant_id), a.updated, a.id)
outbox_write(items, 5)
return {'created'}
"""

# ARGV[2]: as for create plus "expected_version"; ARGV[3]: the new JSON (version set);
# ARGV[4], ARGV[5..]: the outbox events, as for create, enqueued with the update.
LUA_UPDATE_LINK = """
local a = cjson.decode(ARGV[2])
local old = redis.call('GET', KEY_LINK(a.id))
if not old then return {'conflict', 'no link ' .. a.id} end
local od = cjson.decode(old)
if od.version ~= a.expected_version then
  return {'conflict', 'link ' .. a.id .. ' is at version ' .. tostring(od.version)}
end
if od.tenant_id ~= a.tenant_id then return {'conflict', "a link's tenant_id can't change"} end
if a.slug == a.host_slug then return {'conflict', 'slug and host_slug must differ'} end
for _, s in ipairs({a.slug, a.host_slug}) do
  local owner = redis.call('HGET', KEY_SLUGS(), s)
  if owner and owner ~= a.id then return {'conflict', 'slug in use'} end
end
local items = cjson.decode(ARGV[4])
local err = outbox_check(items)
if err then return {'conflict', err} end
redis.call('HDEL', KEY_SLUGS(), od.slug, od.host_slug)
redis.call('HSET', KEY_SLUGS(), a.slug, a.id, a.host_slug, a.id)
for _, k in ipairs(link_indexes(od)) do redis.call('ZREM', k, a.id) end
for _, k in ipairs(link_indexes(a)) do redis.call('ZADD', k, a.score, a.id) end
redis.call('ZADD', KEY_TENANT_LINK_UPDATES(a.tenant_id), a.updated, a.id)
redis.call('SET', KEY_LINK(a.id), ARGV[3])
outbox_write(items, 5)
return {'ok'}
"""

# ARGV[2]: {"tenant_id", "event_id", "calendar_id", "user_id", "limit"}: matching links'
# JSON, newest first (score created_at, then id, both descending).
LUA_FIND_LINKS = """
local a = cjson.decode(ARGV[2])
local key
if val(a.event_id) then key = KEY_LINKS_BY_EVENT(a.tenant_id, a.event_id)
elseif val(a.user_id) then key = KEY_LINKS_BY_USER(a.tenant_id, a.user_id)
elseif val(a.calendar_id) then key = KEY_LINKS_BY_CALENDAR(a.tenant_id, a.calendar_id)
else key = KEY_TENANT_LINKS(a.tenant_id) end
local out = {}
local start = 0
local batch = 200
while #out < a.limit do
  local ids = redis.call('ZRANGE', key, start, start + batch - 1, 'REV')
  if #ids == 0 then break end
  for _, id in ipairs(ids) do
    local j = redis.call('GET', KEY_LINK(id))
    if j then
      local d = cjson.decode(j)
      local ok = true
      for _, f in ipairs({'event_id', 'calendar_id', 'user_id'}) do
        if val(a[f]) and d[f] ~= a[f] then ok = false end
      end
      if ok then
        table.insert(out, j)
        if #out >= a.limit then break end
      end
    end
  end
  start = start + batch
end
return out
"""

# ARGV[2]: [{"id", "tenant_id", "endpoint_id", "ordering_key", "next", "delivered"}];
# ARGV[3..]: each event's JSON without "seq" (added here). Returns {'ok', seq...}.
LUA_ENQUEUE = """
local items = cjson.decode(ARGV[2])
local err = outbox_check(items)
if err then return {'conflict', err} end
local out = {'ok'}
for _, seq in ipairs(outbox_write(items, 3)) do table.insert(out, seq) end
return out
"""

# ARGV[2]: a slug or host slug. The link's JSON, or nil.
LUA_BY_SLUG = """
local id = redis.call('HGET', KEY_SLUGS(), ARGV[2])
if not id then return nil end
return redis.call('GET', KEY_LINK(id))
"""

# ARGV[2]: now, ARGV[3]: limit. The due queue heads' JSON, by next_attempt_at.
LUA_DUE = """
local ids = redis.call('ZRANGE', KEY_DUE(), '-inf', ARGV[2], 'BYSCORE', 'LIMIT', 0, ARGV[3])
local out = {}
for _, id in ipairs(ids) do
  local j = redis.call('GET', KEY_OUTBOX(id))
  if j then table.insert(out, j) end
end
return out
"""

# ARGV: id, manifest JSON, link id, started_at. One step: the manifest and the link's
# index (moved out of another link's index if the manifest names another link).
LUA_PUT_RECORDING = """
local id = ARGV[2]
local old = redis.call('GET', KEY_RECORDING(id))
if old then
  local was = val(cjson.decode(old).link_id) or ''
  if was ~= ARGV[4] then redis.call('ZREM', KEY_LINK_RECORDINGS(was), id) end
end
redis.call('SET', KEY_RECORDING(id), ARGV[3])
redis.call('ZADD', KEY_LINK_RECORDINGS(ARGV[4]), ARGV[5], id)
return 1
"""

# ARGV: id. 1 if this call deleted it (of two deletes at once, exactly one gets 1).
LUA_DELETE_RECORDING = """
local id = ARGV[2]
local old = redis.call('GET', KEY_RECORDING(id))
if not old then return 0 end
redis.call('DEL', KEY_RECORDING(id))
redis.call('ZREM', KEY_LINK_RECORDINGS(val(cjson.decode(old).link_id) or ''), id)
return 1
"""

#: The scripts by the name ``RedisStoreBase._script`` calls them with (each runs
#: after ``LUA_PRELUDE``).
SCRIPTS = {
    "insert": LUA_INSERT,
    "list": LUA_LIST,
    "create_link": LUA_CREATE_LINK,
    "update_link": LUA_UPDATE_LINK,
    "find_links": LUA_FIND_LINKS,
    "by_slug": LUA_BY_SLUG,
    "enqueue": LUA_ENQUEUE,
    "due": LUA_DUE,
    "list_links_page": redis_manage.LUA_LIST_LINKS_PAGE,
    "revoke_key": redis_manage.LUA_REVOKE_KEY,
    "put_recording": LUA_PUT_RECORDING,
    "delete_recording": LUA_DELETE_RECORDING,
}

#: Scripts that write records: with a replica, acknowledged only once it has them.
WRITE_SCRIPTS = frozenset(
    {
        "insert",
        "create_link",
        "update_link",
        "enqueue",
        "revoke_key",
        "put_recording",
        "delete_recording",
    }
)
