-- search.lua — one page of a search, and the number of matches.
--
-- KEYS: index sets and scratch keys, named by position in ARGV[1].
-- ARGV[1]: JSON {g = groups of KEYS indices (AND of ORs; empty: the whole
--   type), a = KEYS index of the type's all-set, t = scratch KEYS indices,
--   ids = [{t = scratch KEYS index, ids = [id, ...]}] groups of ids (_id),
--   each made into a set of those ids that exist (listed in g as a group of
--   that one key; not among t, which resolve() consumes in order),
--   min, max = score bounds as ZRANGEBYSCORE takes them,
--   o = offset, n = page size, r = true for newest first}
-- Returns {total, {id, ...}}.
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
local ids = {}
if q.n > 0 and total > q.o then
  if q.r then
    ids = redis.call('ZREVRANGEBYSCORE', set, q.max, q.min, 'LIMIT', q.o, q.n)
  else
    ids = redis.call('ZRANGEBYSCORE', set, q.min, q.max, 'LIMIT', q.o, q.n)
  end
end
cleanup(q.t)
for _, g in ipairs(q.ids) do redis.call('DEL', KEYS[g.t]) end
return {total, ids}
