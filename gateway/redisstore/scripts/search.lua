-- search.lua — one page of a search, and the number of matches.
--
-- KEYS: index sets and scratch keys, named by position in ARGV[1].
-- ARGV[1]: JSON {g = groups of KEYS indices (AND of ORs; empty: the whole
--   type), a = KEYS index of the type's all-set, t = scratch KEYS indices,
--   ids = [{t = scratch KEYS index, ids = [id, ...]}] groups of ids (_id),
--   each made into a set of those ids that exist (listed in g as a group of
--   that one key; not among t, which resolve() consumes in order),
--   min, max = score bounds as ZRANGEBYSCORE takes them,
--   o = offset, n = page size, r = true for newest first,
--   k = keyset paging, or absent for paging by offset:
--     {s = the snapshot (ms), lo, hi = the score bounds as numbers (lo
--      inclusive, hi exclusive; absent: none), as, ai = the position (score,
--      member) of the last match already returned (absent on a first page),
--      kp = the prefix of the resource hashes' keys (kp .. member),
--      c = the most matches that may have changed since the snapshot,
--      vw = the most versions walked back per changed match}}
-- Returns {total, {member, ...}} by offset, and by keyset
-- {total, {member, ...}, {score, ...}}, or {'stale'} when more than c
-- matches changed since the snapshot (the client starts again).
--
-- Keyset paging keeps a search's order as it was at its snapshot, the
-- instant its first page was read: a page is the next n matches after the
-- last one returned, by (score, member), each match placed by the
-- lastUpdated of its version current at the snapshot. A match changed
-- since then is still found where it stood, so no match is skipped because
-- others moved, and none is returned twice because it moved. Matches not
-- changed since are read straight from the index; changed ones (score
-- beyond the snapshot) are few, and each is placed by its versions' times
-- ('t'..version in its hash), walked back at most vw versions.
local q = cjson.decode(ARGV[1])
for _, g in ipairs(q.ids) do
  for _, id in ipairs(g.ids) do
    local score = redis.call('ZSCORE', KEYS[q.a], id)
    if score then redis.call('ZADD', KEYS[g.t], score, id) end
  end
  redis.call('PEXPIRE', KEYS[g.t], 60000) -- gone even if this script fails later
end
local set = KEYS[q.a]
if #q.g > 0 then set = resolve(q.g, q.t) end
local total = redis.call('ZCOUNT', set, q.min, q.max)

local function done(reply)
  cleanup(q.t)
  for _, g in ipairs(q.ids) do redis.call('DEL', KEYS[g.t]) end
  return reply
end

if not q.k then
  local ids = {}
  if q.n > 0 and total > q.o then
    if q.r then
      ids = redis.call('ZREVRANGEBYSCORE', set, q.max, q.min, 'LIMIT', q.o, q.n)
    else
      ids = redis.call('ZRANGEBYSCORE', set, q.min, q.max, 'LIMIT', q.o, q.n)
    end
  end
  return done({total, ids})
end

local k = q.k
local snap = tonumber(k.s)
local lo = k.lo and tonumber(k.lo) or -math.huge
local hi = k.hi and tonumber(k.hi) or math.huge -- exclusive
local hasAfter = k.as ~= nil
local as, ai = tonumber(k.as or '0'), k.ai or ''
local desc = q.r

-- before reports whether (s1, m1) comes before (s2, m2) in the page order.
local function before(s1, m1, s2, m2)
  if s1 ~= s2 then
    if desc then return s1 > s2 end
    return s1 < s2
  end
  if desc then return m1 > m2 end
  return m1 < m2
end

local function num(x) return string.format('%d', x) end
local found = {}
local function take(member, score)
  if score < lo or score >= hi or score > snap then return end
  if hasAfter and not before(as, ai, score, member) then return end
  found[#found + 1] = {score, member}
end

-- 1. Matches not changed since the snapshot, straight from the index:
-- those tied with the last one returned, then the next n beyond it.
if q.n > 0 then
  local top = math.min(snap, hi - 1) -- scores are whole ms
  local bottom = lo
  if hasAfter then
    for _, m in ipairs(redis.call('ZRANGEBYSCORE', set, num(as), num(as))) do take(m, as) end
    if desc then top = math.min(top, as - 1) else bottom = math.max(bottom, as + 1) end
  end
  if bottom <= top then
    local lower = bottom == -math.huge and '-inf' or num(bottom)
    local page
    if desc then
      page = redis.call('ZREVRANGEBYSCORE', set, num(top), lower, 'WITHSCORES', 'LIMIT', 0, q.n)
    else
      page = redis.call('ZRANGEBYSCORE', set, lower, num(top), 'WITHSCORES', 'LIMIT', 0, q.n)
    end
    for i = 1, #page, 2 do take(page[i], tonumber(page[i + 1])) end
  end
end

-- 2. Matches changed since the snapshot, each where it stood then.
local changed = redis.call('ZRANGEBYSCORE', set, '(' .. num(snap), '+inf', 'LIMIT', 0, k.c + 1)
if #changed > k.c then return done({'stale'}) end
for _, m in ipairs(changed) do
  local key = k.kp .. m
  local v = tonumber(redis.call('HGET', key, 'v') or '0')
  for ver = v, math.max(1, v - k.vw + 1), -1 do
    local t = tonumber(redis.call('HGET', key, 't' .. ver))
    if t and t <= snap then
      take(m, t)
      break
    end
  end
end

table.sort(found, function(x, y) return before(x[1], x[2], y[1], y[2]) end)
local ids, scores = {}, {}
for i = 1, math.min(q.n, #found) do
  ids[i], scores[i] = found[i][2], num(found[i][1])
end
return done({total, ids, scores})
