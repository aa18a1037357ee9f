-- read.lua — versions of resources, each in one consistent read.
--
-- KEYS: resource hashes.
-- ARGV: n (as many as KEYS), version*n: the version wanted of KEYS[i], ''
-- for the current one; then '1' to have the index entries of a current
-- version too, '0' (or nothing) not.
-- Returns per key {version, lastUpdated ms, body, owner[, index entries]},
-- or false when the resource or version is not held.
local out = {}
local n = tonumber(ARGV[1])
local withEntries = ARGV[n + 2] == '1'
for i, key in ipairs(KEYS) do
  local v = ARGV[1 + i]
  local current = v == ''
  if current then v = redis.call('HGET', key, 'v') end
  local got = false
  if v then
    if current and withEntries then
      local r = redis.call('HMGET', key, v, 't' .. v, 'o', 'x')
      if r[1] then got = {tonumber(v), tonumber(r[2]), r[1], r[3] or '', r[4] or ''} end
    else
      local r = redis.call('HMGET', key, v, 't' .. v, 'o')
      if r[1] then got = {tonumber(v), tonumber(r[2]), r[1], r[3] or ''} end
    end
  end
  out[i] = got
end
return out
