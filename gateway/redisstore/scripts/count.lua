-- count.lua — how many resources match each of several criteria in one
-- partition: the matches a spreading store's caps count in the partitions
-- other than their commit's (capsLeft), all of one partition in one run.
--
-- KEYS: the types' all-sets, index sets and scratch keys, named by
-- position in ARGV.
-- ARGV (the convention in scripts.go):
--   nC, {all, nG, {n, index*n}*nG, nT, temp*nT}*nC
--                  the criteria: each its type's all-set (counted whole
--                  when it has no group), its groups of KEYS indices (AND
--                  of ORs) and the scratch KEYS indices resolve() takes
-- Returns {count, ...}: each criteria's matches, in order.
--
-- Work: the criteria are a commit's caps, each counted once however many
-- of the commit's criteria share it, so a run combines no more index sets
-- than the commit's own script does (commit.lua resolves every criteria
-- of the commit), and the gateway bounds those per request (index terms
-- written and searched). Combining index sets (ZUNIONSTORE,
-- ZINTERSTORE) costs with their sizes in Redis, as a search does:
-- resolve() intersects from the smallest set, so a criteria costs about
-- as much as its most selective term's matches; the count itself is
-- ZCARD's, with no loop over members.
local a = ARGV
local counts = {}
local p = 1
for c = 1, tonumber(a[p]) do
  local all = KEYS[tonumber(a[p + 1])]
  p = p + 2
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
  p = p + #temps
  local set = all
  if #groups > 0 then set = resolve(groups, temps) end
  counts[c] = redis.call('ZCARD', set)
  cleanup(temps)
end
return counts
