-- latest.lua — a resource's newest versions within a window, in one consistent read.
--
-- KEYS[1]: the resource's hash.
-- ARGV[1]: at most this many versions; ARGV[2]: at most this many bytes of
-- their bodies, each body's size read (HSTRLEN) before the body, so one
-- that would pass the bound is never read; the newest is read whatever
-- its size (window.lua).
-- Returns {current version (0: not held), owner, then for each version
-- read, newest first: version, lastUpdated ms, body}.
local key = KEYS[1]
local current = tonumber(redis.call('HGET', key, 'v') or '0')
local out = {current, redis.call('HGET', key, 'o') or ''}
newest(key, current, current - tonumber(ARGV[1]) + 1, tonumber(ARGV[2]), out)
return out
