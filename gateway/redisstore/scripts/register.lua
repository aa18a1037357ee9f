-- register.lua — register token systems in the registry every partition
-- shares (the legacy partition's), before a commit in a numbered partition
-- indexes anything under them, so that the cap of systems per parameter
-- counts them once for all partitions, in one atomic step.
--
-- KEYS[1]   the shared registry (a hash, as commit.lua keeps it)
-- ARGV      cap, bound (as commit.lua's), nS, field*nS ("Type index system")
-- Returns {flag*nS}: 1 for a field registered (now or before), 0 for one
-- over its parameter's cap. The generation ('#') is raised when any is
-- added, as a commit adding it would.
--
-- The loop runs over the fields given, which the gateway bounds per
-- request.
local systems, cap, bound = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
local nS = tonumber(ARGV[3])
local have = redis.call('HMGET', systems, unpack(ARGV, 4, 3 + nS))
local out, added = {}, false
for i = 1, nS do
  out[i] = 1
  if not have[i] then
    local field = ARGV[3 + i]
    local typ, index = string.match(field, '^(%S+) (%S+) ')
    if register(systems, typ, index, field, cap, bound) then
      added = true
    else
      out[i] = 0
    end
  end
end
if added then redis.call('HINCRBY', systems, '#', 1) end
return out
