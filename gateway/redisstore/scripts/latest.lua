-- latest.lua — a resource's newest versions within a window, in one consistent read.
--
-- KEYS[1]: the resource's hash.
-- ARGV[1]: at most this many versions; ARGV[2]: at most this many bytes of
-- their bodies, each body's size read (HSTRLEN) before the body, so one
-- that would pass the bound is never read; the newest is read whatever
-- its size.
-- Returns {current version (0: not held), owner, then for each version
-- read, newest first: version, lastUpdated ms, body}.
local key = KEYS[1]
local current = tonumber(redis.call('HGET', key, 'v') or '0')
local out = {current, redis.call('HGET', key, 'o') or ''}
local left = tonumber(ARGV[2])
local oldest = current - tonumber(ARGV[1]) + 1
for v = current, math.max(oldest, 1), -1 do
  local size = redis.call('HSTRLEN', key, v)
  if size > 0 then -- 0: a version not held, left out as a read of it would be
    if size > left and #out > 2 then break end
    left = left - size
    local r = redis.call('HMGET', key, v, 't' .. v)
    out[#out + 1] = v
    out[#out + 1] = tonumber(r[2]) or 0
    out[#out + 1] = r[1]
  end
end
return out
