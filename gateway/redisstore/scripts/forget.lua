-- forget.lua — remove the consumers of a group that have gone: idle for
-- longer than a limit with no job pending. The check and the removal are one
-- step: removing a consumer that holds jobs would drop them from the pending
-- list, and nothing would ever hand them out again.
-- KEYS[1]: the stream. ARGV[1]: group; ARGV[2]: idle limit in milliseconds;
-- ARGV[3]: the caller, never removed.
-- Returns how many consumers were removed.
local limit = tonumber(ARGV[2])
local removed = 0
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local f = {}
  for i = 1, #c, 2 do f[c[i]] = c[i + 1] end
  if f['pending'] == 0 and f['idle'] > limit and f['name'] ~= ARGV[3] then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], f['name'])
    removed = removed + 1
  end
end
return removed
