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
-- to the KEYS listed in temps: for each group of several sets, one for its
-- union and one for each of its sets, then one for the intersection (when
-- there are several groups). Every member of every index set carries its
-- resource's lastUpdated as score, so AGGREGATE MAX keeps that score.
--
-- A union costs as much as its sets hold, and those can be every client's
-- resources (status=requested,accepted,...), while the result is within the
-- smallest group of one set (for a GP system or a provider, the sets of its
-- own resources). So each set of a union larger than that set is
-- intersected with it first, into its own scratch set, and the union is
-- built once from those and the smaller sets: the work follows the
-- caller's resources, once per set, and no union is built again as each
-- set is added. An empty set adds nothing to a union and is left out; a
-- union left with one set is that set, and one left with none empties the
-- intersection.
-- Returns the name of the resulting set.
local function resolve(groups, temps)
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
  local sources = {}
  local t = 1
  for _, g in ipairs(groups) do
    if #g == 1 then
      sources[#sources + 1] = KEYS[g[1]]
    else
      local dest = KEYS[temps[t]]
      local parts = {}
      for k, i in ipairs(g) do
        local n = redis.call('ZCARD', KEYS[i])
        if n > 0 and pivot and n > least then
          local narrowed = KEYS[temps[t + k]]
          redis.call('ZINTERSTORE', narrowed, 2, KEYS[i], pivot, 'AGGREGATE', 'MAX')
          -- Scratch sets expire on their own, should the script fail
          -- before cleanup(); nothing may be left behind under noeviction.
          redis.call('PEXPIRE', narrowed, 60000)
          parts[#parts + 1] = narrowed
        elseif n > 0 then
          parts[#parts + 1] = KEYS[i]
        end
      end
      t = t + 1 + #g
      if #parts == 0 then return KEYS[g[1]] end
      if #parts == 1 then
        sources[#sources + 1] = parts[1]
      else
        local args = {'ZUNIONSTORE', dest, #parts}
        for _, part in ipairs(parts) do args[#args + 1] = part end
        args[#args + 1] = 'AGGREGATE'
        args[#args + 1] = 'MAX'
        redis.call(unpack(args))
        redis.call('PEXPIRE', dest, 60000)
        sources[#sources + 1] = dest
      end
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

-- bytes_before reports whether string x comes before y in byte order: as
-- a sorted set orders the members of one score (and ZRANGEBYLEX), and as
-- Go compares strings. Lua's < and > do not: they compare with strcoll,
-- and Redis sets LC_COLLATE from its environment at start-up, so under
-- en_US.UTF-8 "a" comes before "B" and "ab" before "a-c". Every ordering
-- of members uses this. Its work is the bytes the two share first: no
-- more than the shorter member's length (a resource's id, or a Patient's
-- owner and id), which Signpost bounds.
local function bytes_before(x, y)
  if x == y then return false end -- byte for byte: strings are interned
  for i = 1, math.min(#x, #y) do
    local a, b = string.byte(x, i), string.byte(y, i)
    if a ~= b then return a < b end
  end
  return #x < #y
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
