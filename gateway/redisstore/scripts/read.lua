-- read.lua — versions of resources, each in one consistent read.
--
-- KEYS: resource hashes.
-- ARGV: n (as many as KEYS), version*n: the version wanted of KEYS[i], ''
-- for the current one.
-- Returns per key {version, lastUpdated ms, body, owner}, or false when the
-- resource or version is not held.
local out = {}
for i, key in ipairs(KEYS) do
  local v = ARGV[1 + i]
  if v == '' then v = redis.call('HGET', key, 'v') end
  local got = false
  if v then
    local r = redis.call('HMGET', key, v, 't' .. v, 'o')
    if r[1] then got = {tonumber(v), tonumber(r[2]), r[1], r[3] or ''} end
  end
  out[i] = got
end
return out
