-- lib.lua — shared by the scripts that search (prepended to them at load).

-- resolve combines index sets: each group is a list of KEYS indices whose
-- sets are united (OR); the groups are intersected (AND). Scratch results go
-- to the KEYS listed in temps. Every member of every index set carries its
-- resource's lastUpdated as score, so AGGREGATE MAX keeps that score.
-- Returns the name of the resulting set.
local function resolve(groups, temps)
  local sources = {}
  local t = 1
  for _, g in ipairs(groups) do
    if #g == 1 then
      sources[#sources + 1] = KEYS[g[1]]
    else
      local args = {'ZUNIONSTORE', KEYS[temps[t]], #g}
      for _, i in ipairs(g) do args[#args + 1] = KEYS[i] end
      args[#args + 1] = 'AGGREGATE'
      args[#args + 1] = 'MAX'
      redis.call(unpack(args))
      -- Scratch sets expire on their own, should the script fail before
      -- cleanup(); nothing may be left behind under noeviction.
      redis.call('PEXPIRE', KEYS[temps[t]], 60000)
      sources[#sources + 1] = KEYS[temps[t]]
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
