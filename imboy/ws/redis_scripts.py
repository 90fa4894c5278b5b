"""The Lua scripts of the Redis registry: each change of presence is one atomic step.

A presence entry is "<node>|<conn id>" in the hash `imboy:presence:<uid>`
(device -> entry); a node is live while `imboy:alive:<node>` exists.  Two
nodes registering or unregistering the same user at once therefore agree on
who was first and who was last.  The scripts touch keys they compute (the
alive keys), so they need a single Redis, not Redis Cluster.
"""

# live(key, alive_prefix): live entries of a presence hash; entries of dead nodes are dropped.
LIVE = """
local function live(key, alive)
  local n = 0
  local all = redis.call('HGETALL', key)
  for i = 1, #all, 2 do
    local node = string.match(all[i + 1], '^([^|]+)')
    if node and redis.call('EXISTS', alive .. node) == 1 then n = n + 1
    else redis.call('HDEL', key, all[i]) end
  end
  return n
end
"""
# Register a connection: {previous live entry of this device, live entries before this one};
# the user joins this node's set KEYS[2] (as ARGV[4]) when ARGV[5] is "1".
ADD = LIVE + """
if ARGV[5] == '1' then redis.call('SADD', KEYS[2], ARGV[4]) end
local n = live(KEYS[1], ARGV[3])
local old = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return {old or '', n}
"""
# Unregister (only our own entry: the device may have moved); returns the live entries left;
# the user leaves this node's set KEYS[2] (as ARGV[4]) when ARGV[5] is "1".
REMOVE = LIVE + """
if ARGV[5] == '1' then redis.call('SREM', KEYS[2], ARGV[4]) end
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then redis.call('HDEL', KEYS[1], ARGV[1]) end
return live(KEYS[1], ARGV[3])
"""
# Make a user's entries of this node (ARGV[1]) exactly ARGV[3..] (device, entry pairs), never
# taking a device slot held by another live node; returns the devices lost that way.
SYNC = """
local want, lost = {}, {}
for i = 3, #ARGV, 2 do want[ARGV[i]] = ARGV[i + 1] end
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if string.match(all[i + 1], '^([^|]+)') == ARGV[1] and want[all[i]] ~= all[i + 1] then
    redis.call('HDEL', KEYS[1], all[i])
  end
end
for i = 3, #ARGV, 2 do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  local node = cur and string.match(cur, '^([^|]+)')
  if not cur or not node or node == ARGV[1] or redis.call('EXISTS', ARGV[2] .. node) == 0 then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  else
    table.insert(lost, ARGV[i])
  end
end
return lost
"""
# Forget a dead node (ARGV[1]; ARGV[2] is the key prefix) unless its heartbeat came back.
PURGE = """
if redis.call('EXISTS', ARGV[2] .. 'alive:' .. ARGV[1]) == 1 then return -1 end
local uids = redis.call('SMEMBERS', KEYS[1])
for _, uid in ipairs(uids) do
  local key = ARGV[2] .. 'presence:' .. uid
  local all = redis.call('HGETALL', key)
  for i = 1, #all, 2 do
    if string.match(all[i + 1], '^([^|]+)') == ARGV[1] then redis.call('HDEL', key, all[i]) end
  end
end
redis.call('DEL', KEYS[1])
redis.call('SREM', ARGV[2] .. 'nodes', ARGV[1])
return #uids
"""
