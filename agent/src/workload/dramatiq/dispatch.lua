-- valkey-chaos's own implementation of Dramatiq's Redis broker dispatch contract
-- (KEYS[1] = namespace; ARGV = command, timestamp ms, queue, broker id, heartbeat timeout ms,
-- dead message ttl ms, do-maintenance flag, max unpack size, command arguments...).
-- Written from a behavioural specification; it is not Dramatiq's script.
local ns = KEYS[1]
local command = ARGV[1]
local now = tonumber(ARGV[2])
local queue = ARGV[3]
local broker = ARGV[4]
local heartbeat_timeout = tonumber(ARGV[5])
local dead_ttl = tonumber(ARGV[6])
local maintain = ARGV[7]
local batch = tonumber(ARGV[8])
-- Dramatiq 1.x fleets also move entries of the pre-1.2 ack zsets during maintenance.
local LEGACY_ACKS = false

local base_queue = queue
if string.sub(queue, -3) == ".DQ" then
  base_queue = string.sub(queue, 1, -4)
end
local queue_key = ns .. ":" .. queue
local payloads = queue_key .. ".msgs"
local my_acks_prefix = ns .. ":__acks__." .. broker
local my_acks = my_acks_prefix .. "." .. queue
local beats = ns .. ":__heartbeats__"
local dead_key = ns .. ":" .. base_queue .. ".XQ"
local dead_payloads = dead_key .. ".msgs"

local function in_chunks(list, fn)
  local i = 1
  while i <= #list do
    local part = {}
    local last = math.min(i + batch - 1, #list)
    for j = i, last do
      part[#part + 1] = list[j]
    end
    fn(part)
    i = last + 1
  end
end

redis.call("ZADD", beats, now, broker)

if maintain == "1" then
  local stale = redis.call("ZRANGEBYSCORE", beats, 0, now - heartbeat_timeout)
  for _, other in ipairs(stale) do
    local their_acks = ns .. ":__acks__." .. other .. "." .. queue
    local pending = redis.call("SMEMBERS", their_acks)
    for _, id in ipairs(pending) do
      if redis.call("HEXISTS", payloads, id) == 1 then
        redis.call("RPUSH", queue_key, id)
      end
    end
    if #pending > 0 then
      redis.call("DEL", their_acks)
    end
    if #redis.call("KEYS", ns .. ":__acks__." .. other .. "*") == 0 then
      redis.call("ZREM", beats, other)
    end
  end
  local expired = redis.call("ZRANGEBYSCORE", dead_key, 0, now - dead_ttl)
  in_chunks(expired, function(part)
    redis.call("ZREM", dead_key, unpack(part))
    redis.call("HDEL", dead_payloads, unpack(part))
  end)
  if LEGACY_ACKS then
    local legacy = queue_key .. ".acks"
    local old = redis.call("ZRANGEBYSCORE", legacy, 0, now - 648000000)
    in_chunks(old, function(part)
      redis.call("SADD", my_acks, unpack(part))
      redis.call("ZREM", legacy, unpack(part))
    end)
  end
end

if command == "enqueue" then
  redis.call("HSET", payloads, ARGV[9], ARGV[10])
  redis.call("RPUSH", queue_key, ARGV[9])
  return nil
elseif command == "fetch" then
  local want = math.min(tonumber(ARGV[9]), batch)
  local ids = {}
  while #ids < want do
    local id = redis.call("LPOP", queue_key)
    if not id then
      break
    end
    redis.call("SADD", my_acks, id)
    ids[#ids + 1] = id
  end
  if #ids == 0 then
    return {}
  end
  return redis.call("HMGET", payloads, unpack(ids))
elseif command == "ack" then
  if redis.call("SREM", my_acks, ARGV[9]) == 1 then
    redis.call("HDEL", payloads, ARGV[9])
  end
  return nil
elseif command == "nack" then
  if redis.call("SREM", my_acks, ARGV[9]) == 1 then
    local body = redis.call("HGET", payloads, ARGV[9])
    if body then
      redis.call("ZADD", dead_key, now, ARGV[9])
      redis.call("HSET", dead_payloads, ARGV[9], body)
      redis.call("HDEL", payloads, ARGV[9])
    end
  end
  return nil
elseif command == "requeue" then
  for i = 9, #ARGV do
    local id = ARGV[i]
    if redis.call("SREM", my_acks, id) == 1 and redis.call("HEXISTS", payloads, id) == 1 then
      redis.call("RPUSH", queue_key, id)
    end
  end
  return nil
elseif command == "purge" then
  redis.call("DEL", queue_key, my_acks, payloads, dead_key, dead_payloads)
  return nil
elseif command == "qsize" then
  local delayed = ns .. ":" .. base_queue .. ".DQ"
  return redis.call("HLEN", delayed .. ".msgs") + redis.call("SCARD", my_acks_prefix .. "." .. base_queue .. ".DQ")
    + redis.call("HLEN", ns .. ":" .. base_queue .. ".msgs") + redis.call("SCARD", my_acks_prefix .. "." .. base_queue)
end
return redis.error_reply("unknown dispatch command " .. tostring(command))
