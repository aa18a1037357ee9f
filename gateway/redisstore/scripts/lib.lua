-- lib.lua — shared by the scripts that search or register token systems
-- (prepended to them at load).

-- read_groups reads a criteria's search from ARGV a, p at the count of its
-- groups: each group's KEYS indices (an OR; the groups are ANDed), then
-- the scratch KEYS indices resolve takes. It returns them, and where it
-- stopped (the last index read), as every script that searches lays them
-- out alike.
local function read_groups(a, p)
  local groups, temps = {}, {}
  for g = 1, tonumber(a[p]) do
    local group = {}
    p = p + 1
    for k = 1, tonumber(a[p]) do group[k] = tonumber(a[p + k]) end
    p = p + #group
    groups[g] = group
  end
  p = p + 1
  for t = 1, tonumber(a[p]) do temps[t] = tonumber(a[p + t]) end
  return groups, temps, p + #temps
end

-- resolve combines index sets: each group is a list of KEYS indices whose
-- sets are united (OR); the groups are intersected (AND). Scratch results go
-- to the KEYS listed in temps: one per group of several sets, then one for
-- the intersection, then (when there are both) one more for the step below.
-- Every member of every index set carries its resource's lastUpdated as
-- score, so AGGREGATE MAX keeps that score.
--
-- A union costs as much as its sets hold, and those can be every client's
-- resources (status=requested,accepted,...), while the result is within the
-- smallest group of one set (for a GP system or a provider, the sets of its
-- own resources). When that set is the smaller, each set of a union is
-- intersected with it first, so the work follows it, not the other sets.
-- Returns the name of the resulting set.
local function resolve(groups, temps)
  local unions = 0
  for _, g in ipairs(groups) do
    if #g > 1 then unions = unions + 1 end
  end
  -- A group of one set that is empty empties the intersection: that set
  -- is the (empty) result, and no union is built. Searches that find
  -- nothing are common on the workers' path (a client's subscriptions,
  -- when it has none), and this makes them a few ZCARDs.
  local pivot, least
  for _, g in ipairs(groups) do
    if #g == 1 then
      local n = redis.call('ZCARD', KEYS[g[1]])
      if n == 0 then return KEYS[g[1]] end
      if not least or n < least then pivot, least = KEYS[g[1]], n end
    end
  end
  local scratch = temps[unions + 2]
  if not (unions > 0 and #groups > 1 and scratch) then pivot = nil end
  local sources = {}
  local t = 1
  for _, g in ipairs(groups) do
    if #g == 1 then
      sources[#sources + 1] = KEYS[g[1]]
    else
      local dest = KEYS[temps[t]]
      local size = 0
      if pivot then
        for _, i in ipairs(g) do size = size + redis.call('ZCARD', KEYS[i]) end
      end
      if pivot and size > least then
        redis.call('DEL', dest)
        for _, i in ipairs(g) do
          redis.call('ZINTERSTORE', KEYS[scratch], 2, KEYS[i], pivot, 'AGGREGATE', 'MAX')
          redis.call('PEXPIRE', KEYS[scratch], 60000)
          redis.call('ZUNIONSTORE', dest, 2, dest, KEYS[scratch], 'AGGREGATE', 'MAX')
          redis.call('PEXPIRE', dest, 60000)
        end
      else
        local args = {'ZUNIONSTORE', dest, #g}
        for _, i in ipairs(g) do args[#args + 1] = KEYS[i] end
        args[#args + 1] = 'AGGREGATE'
        args[#args + 1] = 'MAX'
        redis.call(unpack(args))
      end
      -- Scratch sets expire on their own, should the script fail before
      -- cleanup(); nothing may be left behind under noeviction.
      redis.call('PEXPIRE', dest, 60000)
      sources[#sources + 1] = dest
      t = t + 1
    end
  end
  if #sources == 1 then return sources[1] end
  local args = {'ZINTERSTORE', KEYS[temps[t]], #sources}
  for _, s in ipairs(sources) do args[#args + 1] = s end
  args[#args + 1] = 'AGGREGATE'
  args[#args + 1] = 'MAX'
  redis.call(unpack(args))
  redis.call('PEXPIRE', KEYS[temps[t]], 60000)
  return KEYS[temps[t]]
end

local function cleanup(temps)
  for _, i in ipairs(temps) do redis.call('DEL', KEYS[i]) end
end

-- register adds field ("Type index system") to the registry hash systems
-- (commit.lua's own, register.lua's shared one: the cap counted one way),
-- unless the parameter ("Type index") has cap systems already, counted in its field '#Type index'.
-- Returns true when it added it. A registry written before systems were
-- counted has the parameter counted once here, by reading its fields, if
-- it holds no more than bound (HKEYS is as long as the registry); a larger
-- one grew before the caps, and the parameter takes no new system. The
-- caller raises the generation ('#') once for all it adds.
local function register(systems, typ, index, field, cap, bound)
  local count = '#' .. typ .. ' ' .. index
  local n = tonumber(redis.call('HGET', systems, count))
  if not n then
    n = cap
    if redis.call('HLEN', systems) <= bound then
      n = 0
      local prefix = typ .. ' ' .. index .. ' '
      for _, f in ipairs(redis.call('HKEYS', systems)) do
        if string.sub(f, 1, #prefix) == prefix then n = n + 1 end
      end
    end
    redis.call('HSET', systems, count, n)
  end
  if n >= cap then return false end
  redis.call('HSET', systems, field, '1')
  redis.call('HINCRBY', systems, count, 1)
  return true
end
