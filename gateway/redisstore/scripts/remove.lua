-- remove.lua — remove one closed referral whole, or nothing at all.
--
-- The caller (Store.RemoveReferral) reads first what the referral holds:
-- its resources with the version and index entries ('x') each has now,
-- the index sets that name its Provenances and supporting resources (with
-- how many members each has), its unique keys and its fields in shared
-- hashes. Every one of those keys is passed in KEYS; the script checks
-- nothing changed since it was read and only then removes it all.
--
-- ARGV (the convention in scripts.go: counted groups, KEYS by 1-based index):
--   nR, {key, id, version, all, first, nX}*nR
--                         a resource: its hash KEYS[key], its id, the
--                         version read, its type's all-ids set KEYS[all],
--                         and KEYS[first .. first+nX-1] the entries of its
--                         current version, as its hash lists them ('x').
--                         Older versions are in no index (commit.lua
--                         removes a version's entries when it replaces it),
--                         so these are all of its index entries
--   nS, {key, card}*nS    an index set that lists the referral's members
--                         (Provenances by target, supporting resources by
--                         referral), and how many it held when read
--   nU, key*nU            unique keys to delete
--   nF, {key, field}*nF   fields of shared hashes to delete (a Task's last
--                         subscription number, its write-back state)
--   nK, {key, field, value}*nK
--                         what stays of it (its journey's summary for the
--                         outcomes view), set in the same step so that the
--                         counts never lose a referral nor count it twice
--   nG, {key, version}*nG resources that must still be at this version, and
--                         are not removed (a step of a referral too large to
--                         go at once: its Task)
--   nM, {set, key}*nM     filed keys a step removes: KEYS[key] is deleted and
--                         taken out of the set KEYS[set] filing it
--
-- Work: every loop runs over the arguments; their size is bounded by what
-- one referral can hold (see Store.RemoveReferral), never by what Redis holds.
--
-- Returns {'ok'} when removed, {'changed'} when anything differs from what
-- was read (a version, an index entry, a set's size): nothing is removed.
local a = ARGV
local p = 1
local res = {}
for i = 1, tonumber(a[p]) do
  res[i] = {KEYS[tonumber(a[p + 1])], a[p + 2], a[p + 3], KEYS[tonumber(a[p + 4])], tonumber(a[p + 5]), tonumber(a[p + 6])}
  p = p + 6
end
p = p + 1
local sets = {}
for i = 1, tonumber(a[p]) do sets[i] = {KEYS[tonumber(a[p + 1])], tonumber(a[p + 2])}; p = p + 2 end
p = p + 1
local uniques = {}
for i = 1, tonumber(a[p]) do uniques[i] = KEYS[tonumber(a[p + i])] end
p = p + #uniques + 1
local fields = {}
for i = 1, tonumber(a[p]) do fields[i] = {KEYS[tonumber(a[p + 1])], a[p + 2]}; p = p + 2 end
p = p + 1
local kept = {}
for i = 1, tonumber(a[p]) do kept[i] = {KEYS[tonumber(a[p + 1])], a[p + 2], a[p + 3]}; p = p + 3 end
p = p + 1
local guards = {}
for i = 1, tonumber(a[p]) do guards[i] = {KEYS[tonumber(a[p + 1])], a[p + 2]}; p = p + 2 end
p = p + 1
local members = {}
for i = 1, tonumber(a[p]) do members[i] = {KEYS[tonumber(a[p + 1])], KEYS[tonumber(a[p + 2])]}; p = p + 2 end

-- 1. Nothing changed since the read.
for _, r in ipairs(res) do
  local got = redis.call('HMGET', r[1], 'v', 'x')
  if got[1] ~= r[3] then return {'changed'} end
  local x = ''
  if r[6] > 0 then x = table.concat(KEYS, '\n', r[5], r[5] + r[6] - 1) end
  if (got[2] or '') ~= x then return {'changed'} end
end
for _, s in ipairs(sets) do
  if redis.call('ZCARD', s[1]) ~= s[2] then return {'changed'} end
end
for _, g in ipairs(guards) do
  if redis.call('HGET', g[1], 'v') ~= g[2] then return {'changed'} end
end

-- 2. Everything of it goes.
for _, r in ipairs(res) do
  for k = r[5], r[5] + r[6] - 1 do redis.call('ZREM', KEYS[k], r[2]) end
  redis.call('ZREM', r[4], r[2])
  redis.call('DEL', r[1])
end
for _, u in ipairs(uniques) do redis.call('DEL', u) end
for _, f in ipairs(fields) do redis.call('HDEL', f[1], f[2]) end
for _, k in ipairs(kept) do redis.call('HSET', k[1], k[2], k[3]) end
for _, m in ipairs(members) do
  redis.call('ZREM', m[1], m[2])
  redis.call('DEL', m[2])
end
return {'ok'}
