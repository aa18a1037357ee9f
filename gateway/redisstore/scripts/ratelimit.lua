-- ratelimit.lua — one request against a client's rate limit (GCRA, the
-- generic cell rate algorithm: a token bucket kept as one timestamp).
--
-- KEYS[1]: the client's theoretical arrival time, in microseconds.
-- ARGV[1]: emission interval in microseconds (1e6 / requests per second).
-- ARGV[2]: burst tolerance in microseconds (interval * (burst - 1)).
-- Returns {1, 0} when allowed, {0, retry-after in milliseconds} when not.
-- Time comes from Redis, so every gateway replica shares one clock.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local allowAt = tat - tolerance
if allowAt > now then
  return {0, math.ceil((allowAt - now) / 1000)}
end
local newTat = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', newTat), 'PX', math.ceil((newTat - now) / 1000) + 1000)
return {1, 0}
