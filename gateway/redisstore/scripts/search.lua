-- search.lua — one page of a search, and the number of matches.
--
-- KEYS: the type's all-set, index sets and scratch keys, and for keyset
-- paging the hashes of matches written since the snapshot, named by
-- position in ARGV. Which matches those are only this script finds: it
-- names those whose hashes it was not given ('need'), and the gateway runs
-- it again with them.
-- ARGV (the convention in scripts.go: scalars, then counted groups):
--   all            KEYS index of the type's all-set
--   min, max       score bounds as ZRANGEBYSCORE takes them
--   offset, n      the page: offset (paging by offset) and size
--   desc           '1' for newest first
--   keyset         '1' for keyset paging, '0' for paging by offset; then
--                  (each '' or 0 when paging by offset):
--   snapshot       the snapshot (ms)
--   lo, hi         the score bounds as numbers (lo inclusive, hi exclusive;
--                  '' for none)
--   after score, after id
--                  the position of the last match already returned ('' on a
--                  first page)
--   scan           the most matches written since the snapshot looked at
--                  in one run
--   limited        '1': matches written since the snapshot are looked at
--                  afresh on every page, and more than scan - 1 of them is
--                  'stale' (a paging link, which keeps nothing between
--                  pages); '0': the caller keeps what was looked at (seen
--                  and followed below), and a run that looks at scan of
--                  them answers 'more'
--   nG, {n, index*n}*nG
--                  groups of KEYS indices (AND of ORs; none: the whole type)
--   nT, temp*nT    scratch KEYS indices, consumed by resolve() in order
--   nI, {temp, n, id*n}*nI
--                  groups of ids (_id): each made into the scratch set temp
--                  (a KEYS index, not among the temps above) of those ids
--                  that exist, listed among the groups as a group of that
--                  one key
--   seen           keyset paging: the matches written since the snapshot
--                  up to this score (ms) were looked at already ('' for
--                  none)
--   upto, stop, nP, {member, score}*nP
--                  keyset paging, a page's run after its first ('', ''
--                  and 0 otherwise): the score its first run fixed the
--                  page at (matches written since the snapshot beyond it
--                  wait for the next page); or, when the run before named
--                  matches having looked at only some (stop), the score it
--                  looked no further than, nor does this run (it answers
--                  'more', if nothing else); and the matches the page's
--                  first run read from the index, each with its score
--                  (the page's later runs read the index no more)
--   nF, {member, score}*nF
--                  keyset paging: those of them that were in the snapshot,
--                  each with the score of its position then; a caller that
--                  keeps them gives a bounded number (those placed nearest
--                  after the page's start, and those of them named in
--                  'need'), and keeps the page only before the nearest one
--                  it did not give
--   nK, {member, hash}*nK
--                  keyset paging: matches whose hashes are given, each with
--                  the KEYS index of its hash
-- Returns {total, {member, ...}, {score, ...}} (the scores let a search
-- of several partitions merge their pages in order); for keyset paging
-- with a fourth element {seen, member, score, ...}: how far the matches
-- written since the snapshot are now looked at, and those newly found to
-- have been in it, for the caller to pass to the next page. Or
--   {'stale'}      (limited) more than scan - 1 matches were written since
--                  the snapshot: the client starts again;
--   {'need', {member, ...}, upto, {member, score, ...}, stop}
--                  matches written since the snapshot given neither with
--                  their hashes nor among the followed (nothing else done;
--                  run again with them: among the followed if they are,
--                  else with their hashes; and with upto, stop and the
--                  matches read from the index as the next run's upto,
--                  stop and nP group: upto '' unless the page is fixed,
--                  stop '' if it is);
--   {'more', {seen, member, score, ...}, {member, score, ...}}
--                  (not limited) scan matches written since the snapshot
--                  were looked at, and there are more: run again with these
--                  added to seen and followed (no hashes needed any more),
--                  and with the matches read from the index as its nP group.
--
-- Keyset paging keeps a search's order as it was at its snapshot, the
-- instant its first page was read: a page is the next n matches after the
-- last one returned, by (score, member), each match placed by the
-- lastUpdated of its version current at the snapshot. A match changed
-- since then is still found where it stood, so no match is skipped because
-- others moved, and none is returned twice because it moved; one created
-- since was not in the snapshot and is in no page. Matches not written
-- since are read straight from the index; those written since (score beyond
-- the snapshot) are looked at in score order, each placed by its versions'
-- times ('t'..version in its hash): those only grow with the version, so
-- the newest at or before the snapshot is found by a binary search over
-- 1..v, however often it changed since (at most 64 halvings, as v fits in
-- 64 bits: about 20 reads for a million versions); one whose version 1 is
-- after the snapshot was created since.
-- A caller that keeps seen and followed has each looked at once, scan a
-- run (again only if written in the last moments: the caller may pass a
-- seen behind what it was told, for writes landing late), and gives each
-- run a bounded number of the followed: however many are created or
-- changed meanwhile, no run looks at more than scan, nor is given more
-- followed than the caller's bound, and none makes the search stale. Nor
-- do creations between a page's runs: a page whose runs need hashes is
-- fixed by its first, when that one looked at every match written since
-- up to the top; the later runs look no further than the last score it
-- found (upto) and are given what it read from the index, so writes after
-- it wait for the next page; one a run named is placed by the hash it was
-- given even if written again beyond upto. Nor do changes between the runs
-- of a run that looked at only some: the next looks no further than it
-- (stop), so a match changed meanwhile leaves what it looks at and lets
-- no other in to be named in turn. Nor do writes landing late between a
-- page's runs: every run after the first is given what the first read
-- from the index, so a match of the snapshot written again, stamped behind
-- where the runs looked on from (seen), is still in the page, though no
-- run of it looks at that write (the next page looks FollowLag behind).
-- Every loop is bounded by Signpost, not by writers: a run reads n from
-- the index (and the ties of one score), or is given those its page's
-- first run read; at most scan matches written since the snapshot, and
-- those whose hashes it is given (named by at most maxRereads runs), each
-- placed in at most 66 reads (v, version 1, 64 halvings); and the
-- followed ones it is given, one read each.
local a = ARGV
local all = KEYS[tonumber(a[1])]
local min, max = a[2], a[3]
local offset, count = tonumber(a[4]), tonumber(a[5])
local desc, keyset = a[6] == '1', a[7] == '1'
local snapArg, loArg, hiArg, afterScore, afterID = a[8], a[9], a[10], a[11], a[12]
local scan, limited = tonumber(a[13]), a[14] == '1'
local groups, temps, p = read_groups(a, 15)
p = p + 1
local idSets = {}
for i = 1, tonumber(a[p]) do
  local n = tonumber(a[p + 2])
  idSets[i] = {KEYS[tonumber(a[p + 1])], p + 3, p + 2 + n}
  p = p + 2 + n
end
p = p + 1
local seenArg = a[p]
local uptoArg, stopArg = a[p + 1], a[p + 2]
local pinned, nPinned = {}, tonumber(a[p + 3])
for i = 1, nPinned do pinned[i] = {tonumber(a[p + 3 + 2 * i]), a[p + 2 + 2 * i]} end
p = p + 2 * nPinned + 4
local followed, nFollowed = {}, tonumber(a[p])
for i = 1, nFollowed do followed[a[p + 2 * i - 1]] = tonumber(a[p + 2 * i]) end
p = p + 2 * nFollowed + 1
local hashOf = {}
for i = 1, tonumber(a[p]) do hashOf[a[p + 2 * i - 1]] = KEYS[tonumber(a[p + 2 * i])] end

for _, g in ipairs(idSets) do
  for i = g[2], g[3] do
    local score = redis.call('ZSCORE', all, a[i])
    if score then redis.call('ZADD', g[1], score, a[i]) end
  end
  redis.call('PEXPIRE', g[1], 60000) -- gone even if this script fails later
end
local set = all
if #groups > 0 then set = resolve(groups, temps) end
local total = redis.call('ZCOUNT', set, min, max)

local function done(reply)
  cleanup(temps)
  for _, g in ipairs(idSets) do redis.call('DEL', g[1]) end
  return reply
end

if not keyset then
  local ids, scores = {}, {}
  if count > 0 and total > offset then
    local page
    if desc then
      page = redis.call('ZREVRANGEBYSCORE', set, max, min, 'WITHSCORES', 'LIMIT', offset, count)
    else
      page = redis.call('ZRANGEBYSCORE', set, min, max, 'WITHSCORES', 'LIMIT', offset, count)
    end
    for i = 1, #page, 2 do ids[#ids + 1], scores[#scores + 1] = page[i], page[i + 1] end
  end
  return done({total, ids, scores})
end

local snap = tonumber(snapArg)
local lo = loArg ~= '' and tonumber(loArg) or -math.huge
local hi = hiArg ~= '' and tonumber(hiArg) or math.huge -- exclusive
local hasAfter = afterScore ~= ''
local as, ai = tonumber(afterScore) or 0, afterID

-- before reports whether (s1, m1) comes before (s2, m2) in the page order:
-- by score, ties by member in byte order (bytes_before), as the index
-- holds them and the gateway merges pages.
local function before(s1, m1, s2, m2)
  if s1 ~= s2 then
    if desc then return s1 > s2 end
    return s1 < s2
  end
  if desc then return bytes_before(m2, m1) end
  return bytes_before(m1, m2)
end

local function num(x) return string.format('%d', x) end
local found = {}
local function take(member, score)
  if score < lo or score >= hi or score > snap then return end
  if hasAfter and not before(as, ai, score, member) then return end
  found[#found + 1] = {score, member}
end

-- 1. Matches not changed since the snapshot, straight from the index:
-- those tied with the last one returned, then the next n beyond it. A
-- run of a page after its first has them from the first (pinned): those
-- it read then are in the page even if changed since, beyond upto, where
-- this run does not look, or late, behind seen, where it no longer looks.
-- (A first run that read none has later runs read the index again.)
local upto = uptoArg ~= '' and tonumber(uptoArg) or nil
local given = upto or nPinned > 0
if given then
  for _, f in ipairs(pinned) do take(f[2], f[1]) end
elseif count > 0 then
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
      page = redis.call('ZREVRANGEBYSCORE', set, num(top), lower, 'WITHSCORES', 'LIMIT', 0, count)
    else
      page = redis.call('ZRANGEBYSCORE', set, lower, num(top), 'WITHSCORES', 'LIMIT', 0, count)
    end
    for i = 1, #page, 2 do take(page[i], tonumber(page[i + 1])) end
  end
end

-- 2. Matches written since the snapshot: the next scan of them after
-- those already looked at (seen), each either in the snapshot, and placed
-- where it stood then (followed), or created since, and in no page.
local seen = math.max(snap, seenArg ~= '' and tonumber(seenArg) or snap)
local stop = stopArg ~= '' and tonumber(stopArg) or nil
local top = upto or stop
local batch = redis.call('ZRANGEBYSCORE', set, '(' .. num(seen), top and num(top) or '+inf', 'WITHSCORES', 'LIMIT', 0, scan)
local full = #batch >= 2 * scan
local complete = not full and not stop
if full then
  if limited then return done({'stale'}) end
  -- seen is a score: the members of the batch's last one are left for the
  -- next run, so none is passed over, unless they are the whole batch
  -- (one millisecond's writes), then read whole.
  local last, keep = batch[#batch], #batch
  while keep > 0 and batch[keep] == last do keep = keep - 2 end
  if keep == 0 then
    batch = redis.call('ZRANGEBYSCORE', set, last, last, 'WITHSCORES')
  else
    for i = #batch, keep + 1, -1 do batch[i] = nil end
  end
end
-- placed returns the time of the version of the resource hashed at key
-- current at the snapshot (nil: created since). Versions' times only grow,
-- so it is the newest version at or before the snapshot, found by halving
-- 1..v: at most 64 times, as v fits in 64 bits.
local function placed(key)
  local at = function(ver) return tonumber(redis.call('HGET', key, 't' .. ver)) end
  local v = tonumber(redis.call('HGET', key, 'v') or '0')
  if v < 1 then return nil end
  local t1 = at(1)
  if not t1 or t1 > snap then return nil end
  local good, goodT, bad = 1, t1, v + 1 -- version good is at or before; bad is after
  for _ = 1, 64 do
    if bad - good <= 1 then break end
    local mid = math.floor((good + bad) / 2)
    local t = at(mid)
    if t and t <= snap then good, goodT = mid, t else bad = mid end
  end
  return goodT
end

-- readFromIndex is what part 1 read, for the page's later runs: a match
-- written again between them, late (behind seen), is in none of their
-- batches, nor any longer in the index among those unchanged.
local function readFromIndex()
  local read = {}
  for _, f in ipairs(found) do read[#read + 1] = f[2]; read[#read + 1] = num(f[1]) end
  return read
end

local need = {'need'}
for i = 1, #batch, 2 do
  local m = batch[i]
  if not followed[m] and not hashOf[m] then need[#need + 1] = m end
end
if #need > 1 then
  -- When the batch reached the top, its last score fixes the page: the
  -- next runs look no further (upto), and are given what this one read
  -- from the index, so matches written between the runs wait for the next
  -- page and the runs converge however many are created meanwhile. When
  -- it did not, its last score stops the next run (stop), for the same.
  local fixed, stopAt = '', ''
  if complete then
    fixed = upto and num(upto) or (#batch > 0 and batch[#batch] or num(seen))
  else
    stopAt = batch[#batch]
  end
  local names = {}
  for i = 2, #need do names[#names + 1] = need[i] end
  return done({'need', names, fixed, readFromIndex(), stopAt})
end
-- A run stopped short of the top looked at every match up to stop.
local learnt = {(stop and not full) and num(stop) or (#batch > 0 and batch[#batch] or num(seen))}
-- Every match whose hash was given is placed, in the batch or not: one an
-- earlier run of the page named may have changed again since, beyond upto
-- (out of this batch), and would be in neither part of the page.
for m, key in pairs(hashOf) do
  if not followed[m] then
    local t = placed(key)
    if t then
      followed[m] = t
      learnt[#learnt + 1] = m
      learnt[#learnt + 1] = num(t)
    end
  end
end
if not complete then
  return done({'more', learnt, readFromIndex()})
end
local taken = {}
for _, f in ipairs(found) do taken[f[2]] = true end
for m, t in pairs(followed) do
  -- Still a match (not removed, nor changed out of the search's terms);
  -- one whose score went back to the snapshot's (a writer's clock behind)
  -- is read with the unchanged ones (or was, by the page's first run).
  local now = tonumber(redis.call('ZSCORE', set, m))
  if now and (now > snap or given) and not taken[m] then take(m, t) end
end

table.sort(found, function(x, y) return before(x[1], x[2], y[1], y[2]) end)
local ids, scores = {}, {}
for i = 1, math.min(count, #found) do
  ids[i], scores[i] = found[i][2], num(found[i][1])
end
return done({total, ids, scores, learnt})
