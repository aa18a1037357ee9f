-- commit.lua — apply one change set atomically, or nothing at all.
--
-- KEYS: every key the change reads or writes; the plan names them by position.
-- ARGV[1]: the plan, JSON:
--   d  KEYS index of the commit's done-marker (see keys.commitDone)
--   u  unique keys  [{k = KEYS index, v = value}]   abort if KEYS[k] is held
--   c  criteria     [{g = groups of KEYS indices, t = scratch KEYS indices}]
--                   abort if any conditional create's search matches
--   w  writes       [{k = resource key, e = expected version (-1: any),
--                     v = new version, s = lastUpdated ms, b = ARGV index of
--                     the body, x = term KEYS indices, a = type's all-set}]
--   j  jobs         [{k = stream key, f = {field, value, ...}}]
-- ARGV[2..]: resource bodies.
--
-- Returns one of
--   {'ok'}                         applied now
--   {'done'}                       applied earlier (a re-sent commit)
--   {'held', i, holder}            unique key i (0-based) is held by holder
--   {'matched', id1 [, id2]}       a conditional create found these
--   {'stale', i, current}          write i (0-based) expected another version
local plan = cjson.decode(ARGV[1])

if redis.call('EXISTS', KEYS[plan.d]) == 1 then return {'done'} end

-- 1. Every precondition, before anything is written.
for i, u in ipairs(plan.u) do
  local holder = redis.call('GET', KEYS[u.k])
  if holder then return {'held', i - 1, holder} end
end
for _, c in ipairs(plan.c) do
  local set = resolve(c.g, c.t)
  local ids = redis.call('ZRANGE', set, 0, 1)
  cleanup(c.t)
  if #ids > 0 then
    local out = {'matched'}
    for _, id in ipairs(ids) do out[#out + 1] = id end
    return out
  end
end
for i, w in ipairs(plan.w) do
  local cur = tonumber(redis.call('HGET', KEYS[w.k], 'v') or '0')
  if w.e ~= -1 and cur ~= w.e then return {'stale', i - 1, cur} end
end

-- 2. The writes: new version, re-indexed; old versions stay for history.
for _, w in ipairs(plan.w) do
  local key = KEYS[w.k]
  local id = w.id
  local old = redis.call('HGET', key, 'x')
  if old then
    for term in string.gmatch(old, '[^\n]+') do redis.call('ZREM', term, id) end
  end
  local terms = {}
  for _, i in ipairs(w.x) do
    redis.call('ZADD', KEYS[i], w.s, id)
    terms[#terms + 1] = KEYS[i]
  end
  redis.call('ZADD', KEYS[w.a], w.s, id)
  redis.call('HSET', key, 'v', w.v, 'x', table.concat(terms, '\n'),
    tostring(w.v), ARGV[w.b], 't' .. w.v, w.s)
end
for _, u in ipairs(plan.u) do redis.call('SET', KEYS[u.k], u.v) end
for _, j in ipairs(plan.j) do redis.call('XADD', KEYS[j.k], '*', unpack(j.f)) end
redis.call('SET', KEYS[plan.d], '1', 'EX', 600)
return {'ok'}
