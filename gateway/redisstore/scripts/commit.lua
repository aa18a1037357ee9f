-- commit.lua — apply one change set atomically, or nothing at all.
--
-- KEYS: every key the change reads or writes; ARGV names them by position.
-- ARGV: a flat list read in order (flat, not JSON: decoding is a large
-- share of a script this short):
--   token                      this commit's identity (random, per commit)
--   nU, {key, value}*nU        unique keys: abort if KEYS[key] is held
--   nC, {criteria}*nC          conditional creates: abort if any matches, where
--                              criteria = nG, {n, key*n}*nG, nT, temp*nT
--                              (groups of KEYS indices: OR within, AND across;
--                              temp: scratch KEYS indices)
--   nW, {write}*nW             write = key, id, owner, expect (-1: any), version,
--                              lastUpdated ms, body, all-set key, nX, term key*nX
--   nJ, {job}*nJ               job = stream key, nF, field/value*nF
--   nA, {ack}*nA               ack = stream key, group, entry id, consumer: the
--                              job this commit finishes (XACK and XDEL, with the
--                              writes); with a consumer, only while that
--                              consumer still holds it; without, only while the
--                              entry exists (a dead letter re-driven once)
--
-- Returns one of
--   {'ok'}                         applied now
--   {'done'}                       applied earlier: a commit re-sent after its
--                                  reply was lost finds its own token on its
--                                  first write (every commit writes)
-- and an error reply for a commit that claims a key or writes a resource
-- twice (the gateway refuses such requests before they get here).
--   {'held', i, holder}            unique key i (0-based) is held by holder
--   {'matched', id1 [, id2]}       a conditional create found these
--   {'stale', i, current}          write i (0-based) expected another version
--   {'lost'}                       the job is no longer the caller's to finish
local pos = 0
local function nxt() pos = pos + 1; return ARGV[pos] end
local function num() return tonumber(nxt()) end

local token = nxt()

local uniques = {}
for i = 1, num() do uniques[i] = {KEYS[num()], nxt()} end
local criteria = {}
for i = 1, num() do
  local groups, temps = {}, {}
  for g = 1, num() do
    local group = {}
    for k = 1, num() do group[k] = num() end
    groups[g] = group
  end
  for t = 1, num() do temps[t] = num() end
  criteria[i] = {groups, temps}
end
local writes = {}
for i = 1, num() do
  local w = {key = KEYS[num()], id = nxt(), owner = nxt(), expect = num(), version = nxt(), score = nxt(), body = nxt(), all = KEYS[num()], terms = {}}
  for t = 1, num() do w.terms[t] = KEYS[num()] end
  writes[i] = w
end
local jobs = {}
for i = 1, num() do
  local j = {key = KEYS[num()], fields = {}}
  for f = 1, num() * 2 do j.fields[f] = nxt() end
  jobs[i] = j
end
local acks = {}
for i = 1, num() do acks[i] = {KEYS[num()], nxt(), nxt(), nxt()} end

-- 0. A commit re-sent after its reply was lost (go-redis re-sends on a
-- broken connection) finds its token on its first write: it was applied.
-- This comes before the other checks, which it would now fail. Two separate
-- commits never share a token, however alike their changes.
if #writes > 0 and redis.call('HGET', writes[1].key, 'c') == token then
  return {'done'}
end

-- 1. Every precondition, before anything is written.
for _, a in ipairs(acks) do
  if a[4] ~= '' then
    if #redis.call('XPENDING', a[1], a[2], a[3], a[3], 1, a[4]) == 0 then return {'lost'} end
  elseif #redis.call('XRANGE', a[1], a[3], a[3]) == 0 then
    return {'lost'}
  end
end
local claimed = {}
for i, u in ipairs(uniques) do
  if claimed[u[1]] then return redis.error_reply('commit claims one unique key twice') end
  claimed[u[1]] = true
  local holder = redis.call('GET', u[1])
  if holder then return {'held', i - 1, holder} end
end
local written = {}
for _, w in ipairs(writes) do
  if written[w.key] then return redis.error_reply('commit writes one resource twice') end
  written[w.key] = true
end
for _, c in ipairs(criteria) do
  local set = resolve(c[1], c[2])
  local ids = redis.call('ZRANGE', set, 0, 1)
  cleanup(c[2])
  if #ids > 0 then
    local out = {'matched'}
    for _, id in ipairs(ids) do out[#out + 1] = id end
    return out
  end
end
for i, w in ipairs(writes) do
  local cur = tonumber(redis.call('HGET', w.key, 'v') or '0')
  if w.expect ~= -1 and cur ~= w.expect then return {'stale', i - 1, cur} end
  w.cur = cur
end

-- 2. The writes: a new version, re-indexed; old versions stay for vread.
for _, w in ipairs(writes) do
  if w.cur ~= 0 then
    local old = redis.call('HGET', w.key, 'x')
    if old then
      for term in string.gmatch(old, '[^\n]+') do redis.call('ZREM', term, w.id) end
    end
  end
  for _, term in ipairs(w.terms) do redis.call('ZADD', term, w.score, w.id) end
  redis.call('ZADD', w.all, w.score, w.id)
  redis.call('HSET', w.key, 'v', w.version, 'c', token, 'o', w.owner, 'x', table.concat(w.terms, '\n'),
    w.version, w.body, 't' .. w.version, w.score)
end
for _, u in ipairs(uniques) do redis.call('SET', u[1], u[2]) end
for _, j in ipairs(jobs) do redis.call('XADD', j.key, '*', unpack(j.fields)) end
for _, a in ipairs(acks) do
  redis.call('XACK', a[1], a[2], a[3])
  redis.call('XDEL', a[1], a[3])
end
return {'ok'}
