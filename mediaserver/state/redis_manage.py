"""The management operations of ``RedisStore`` (issue 17): the link listing by
``(created_at, id)`` with ``updated_since``, the one-time build of the per-tenant
update-time index for links stored before it existed, changing a record in one
optimistic transaction, and revoking an API key unless it is the tenant's last admin.

The Lua sources here run after ``redis_scripts``' prelude (``P``, the ``KEY_*``
functions, ``val``); ``redis_scripts.py`` names them, ``redis_base.py`` registers them
and ``redis_store.py`` wraps them as methods.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import WatchError

from .models import from_dict, to_dict

__all__ = [
    "CANDIDATES_MAX",
    "LUA_LIST_LINKS_PAGE",
    "LUA_REVOKE_KEY",
    "build_link_update_index",
    "replace_record",
]

T = TypeVar("T")

#: With ``updated_since``, at most this many changed links are sorted in the script;
#: more, and the created_at index is walked instead (each link's update time checked).
CANDIDATES_MAX = 2000

# ARGV[2]: {"tenant_id", "event_id", "calendar_id", "since", "after_score", "after_id",
# "limit", "candidates_max"} (scores as exact decimal strings, or null). The links'
# JSON newest first by (created_at, id), strictly past the cursor (older, or as old
# with a smaller id), updated at or after since.
LUA_LIST_LINKS_PAGE = """
local a = cjson.decode(ARGV[2])
local upd = KEY_TENANT_LINK_UPDATES(a.tenant_id)
local key
if val(a.event_id) then key = KEY_LINKS_BY_EVENT(a.tenant_id, a.event_id)
elseif val(a.calendar_id) then key = KEY_LINKS_BY_CALENDAR(a.tenant_id, a.calendar_id)
else key = KEY_TENANT_LINKS(a.tenant_id) end
local since = nil
if val(a.since) then since = tonumber(a.since) end
local after = nil
if val(a.after_score) then after = tonumber(a.after_score) end
local function beyond(score, id)
  if after == nil then return true end
  if score ~= after then return score < after end
  return id < a.after_id
end
local function wanted(j)
  local d = cjson.decode(j)
  return (not val(a.event_id) or d.event_id == a.event_id)
    and (not val(a.calendar_id) or d.calendar_id == a.calendar_id)
end
local out = {}
if since ~= nil and redis.call('ZCOUNT', upd, a.since, '+inf') <= a.candidates_max then
  -- few changed links: take them from the update index, sort them (newest first)
  local rows = {}
  for _, id in ipairs(redis.call('ZRANGE', upd, a.since, '+inf', 'BYSCORE')) do
    local s = redis.call('ZSCORE', key, id)
    if s then
      s = tonumber(s)
      if beyond(s, id) then table.insert(rows, {s, id}) end
    end
  end
  table.sort(rows, function(x, y)
    if x[1] ~= y[1] then return x[1] > y[1] end
    return x[2] > y[2]
  end)
  for _, r in ipairs(rows) do
    if #out >= a.limit then break end
    local j = redis.call('GET', KEY_LINK(r[2]))
    if j and wanted(j) then table.insert(out, j) end
  end
  return out
end
-- walk the created_at index down from the cursor
local max = '+inf'
if after ~= nil then max = a.after_score end
local offset = 0
local batch = 200
while #out < a.limit do
  local page = redis.call('ZRANGE', key, max, '-inf', 'BYSCORE', 'REV', 'LIMIT', offset,
    batch, 'WITHSCORES')
  if #page == 0 then break end
  for i = 1, #page, 2 do
    local id = page[i]
    if beyond(tonumber(page[i + 1]), id) then
      local ok = true
      if since ~= nil then
        local u = redis.call('ZSCORE', upd, id)
        ok = u and tonumber(u) >= since
      end
      if ok then
        local j = redis.call('GET', KEY_LINK(id))
        if j and wanted(j) then
          table.insert(out, j)
          if #out >= a.limit then break end
        end
      end
    end
  end
  offset = offset + batch
end
return out
"""

# ARGV[2]: key id, ARGV[3]: its JSON as read, ARGV[4]: the revoked JSON (written by
# Python, so numbers round-trip), ARGV[5]: tenant id. 'changed' if the record moved on
# since it was read (the caller reads again), 'last-admin' if no other active admin
# key of the tenant would remain, else 'revoked'. A key without scopes is an admin key.
LUA_REVOKE_KEY = """
local cur = redis.call('GET', KEY_API_KEY(ARGV[2]))
if cur ~= ARGV[3] then return 'changed' end
local function active_admin(d)
  if val(d.revoked_at) then return false end
  if not val(d.scopes) then return true end
  for _, s in ipairs(d.scopes) do if s == 'admin' then return true end end
  return false
end
if active_admin(cjson.decode(cur)) then
  local others = 0
  for _, id in ipairs(redis.call('ZRANGE', KEY_TENANT_API_KEYS(ARGV[5]), 0, -1)) do
    if id ~= ARGV[2] then
      local j = redis.call('GET', KEY_API_KEY(id))
      if j and active_admin(cjson.decode(j)) then others = others + 1 end
    end
  end
  if others == 0 then return 'last-admin' end
end
redis.call('SET', KEY_API_KEY(ARGV[2]), ARGV[4])
return 'revoked'
"""


def _dumps(obj: Any) -> str:
    return json.dumps(to_dict(obj), separators=(",", ":"), sort_keys=True)


async def replace_record(
    client: aioredis.Redis, key: str, cls: type[T], changes: Mapping[str, Any]
) -> T | None:
    """Replace fields of the JSON record at ``key`` in one optimistic transaction;
    the new record, or None if there is none."""
    async with client.pipeline(transaction=True) as pipe:
        while True:
            try:
                await pipe.watch(key)
                raw = await pipe.get(key)
                if raw is None:
                    return None
                record = dataclasses.replace(from_dict(cls, json.loads(raw)), **changes)  # type: ignore[type-var]
                pipe.multi()  # type: ignore[no-untyped-call]
                pipe.set(key, _dumps(record))
                await pipe.execute()
                return record
            except WatchError:
                continue


async def build_link_update_index(
    client: aioredis.Redis, *, link_pattern: str, index_key: Callable[[str], str], marker: str
) -> int:
    """Put every stored link in its tenant's update-time index (``index_key`` with
    of a tenant id), once: the write scripts keep it from then on. Idempotent and
    safe next to concurrent writes (``ZADD GT`` never lowers a newer time); ``marker``
    records that it ran. Returns the number of links indexed (0 if it had run)."""
    if await client.get(marker) is not None:
        return 0
    count = 0
    batch: list[str] = []

    async def flush() -> None:
        nonlocal count
        values = await client.mget(batch)
        async with client.pipeline(transaction=False) as pipe:
            for raw in values:
                if raw is None:
                    continue
                d = json.loads(raw)
                zset = index_key(d["tenant_id"])
                pipe.zadd(zset, {d["id"]: float(d.get("updated_at") or 0.0)}, gt=True)
                count += 1
            await pipe.execute()
        batch.clear()

    async for key in client.scan_iter(match=link_pattern, count=500):
        batch.append(str(key))
        if len(batch) >= 500:
            await flush()
    if batch:
        await flush()
    await client.set(marker, "1")
    return count
