"""The cluster's Lua scripts (atomic decisions in Redis)."""

# Claim a room unless a live node holds it: returns the holder's value. A new holder is
# the candidate (ARGV[7], ARGV[9], ... with their heartbeat loads in ARGV[8], ...,
# best first) with the least load plus the rooms placed on it that it did not count in
# its load yet (the counter ARGV[6]..node; each heartbeat subtracts the rooms the node
# started hosting since the last one, which its load counts from then on, at least one
# each): a burst of new rooms spreads.
# Liveness is only judged (a missing node key = dead) when ARGV[4] is "1" (the caller
# has been connected for a lease) and this Redis has been up for a lease (ARGV[5] s):
# right after a restart every key that expired meanwhile is missing, live nodes' too.
# Otherwise a holder without a node key is unknown, so it keeps the room, and a room
# without holder whose last host (KEYS[3]) has not registered again is not placed now:
# that host may still re-create the lease (the caller gets "" = unavailable). A node
# renews its leases before it registers, so a registered last host has none.
# A room whose link was revoked (KEYS[4] exists) is never claimed: returns "revoked".
CLAIM = """
if redis.call('EXISTS', KEYS[4]) == 1 then return 'revoked' end
local judge = ARGV[4] == '1'
if judge then
  local up = tonumber(string.match(redis.call('INFO', 'server'), 'uptime_in_seconds:(%d+)'))
  judge = up ~= nil and up >= tonumber(ARGV[5])
end
local cur = redis.call('GET', KEYS[1])
if cur then
  local node = string.match(cur, '^([^|]+)|')
  if not judge or (node and redis.call('EXISTS', ARGV[3] .. node) == 1) then return cur end
elseif not judge then
  local last = redis.call('GET', KEYS[3])
  if last then
    if redis.call('EXISTS', ARGV[3] .. last) == 0 then return '' end
  elseif redis.call('EXISTS', KEYS[2]) == 1 then
    return ''
  end
end
local best, best_load = nil, nil
for i = 7, #ARGV, 2 do
  local placed = math.max(0, tonumber(redis.call('GET', ARGV[6] .. ARGV[i]) or '0'))
  local load = tonumber(ARGV[i + 1]) + placed
  if best == nil or load < best_load then best, best_load = ARGV[i], load end
end
redis.call('INCR', ARGV[6] .. best)
redis.call('PEXPIRE', ARGV[6] .. best, ARGV[2])
local token = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], 86400000)
local value = best .. '|' .. token
redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
redis.call('SET', KEYS[3], best, 'PX', 86400000)
return value
"""
# Renew only our own lease (fencing: a newer holder's lease is never touched).
RENEW = """
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not cur then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 2 end
return 0
"""
# A cluster-wide singleton job (e.g. the webhook dispatcher): hold or take the lock.
SINGLETON = """
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not cur then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0
"""
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# Fenced write of a room's state: only by the current lease holder (ARGV[1] = its lease
# value), so a fenced or stale host can never overwrite the new host's state.
# ARGV[2] the JSON, or "" to delete it; ARGV[3] its expiry (ms).
SAVE_STATE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[2]) return 1 end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return 1
"""

# A node's heartbeat: ARGV[1] rooms placed on it are now counted in its load.
SETTLE_PLACED = """
local left = redis.call('DECRBY', KEYS[1], ARGV[1])
if left <= 0 then redis.call('DEL', KEYS[1]) end
return left
"""
