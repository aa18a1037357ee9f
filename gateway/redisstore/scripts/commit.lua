-- commit.lua — apply one change set atomically, or nothing at all.
--
-- KEYS: every key the change reads or writes, ARGV naming them by
-- position; a resource's previous index entries (its hash lists them, 'x')
-- are read by the gateway first and passed too, and checked here.
-- ARGV (the convention in scripts.go: scalars, then counted groups; flat,
-- not JSON: decoding is a large share of a script this short):
--   token                      this commit's identity (random, per commit)
--   systems, guard, cap, term prefix, registry bound
--                              the registry of token systems (a hash; a
--                              KEYS index); guard '' or the generation
--                              (field '#') the commit's criteria were
--                              expanded with; cap: the most systems a
--                              parameter registers (counted in field
--                              '#Type index'); the term prefix; registry
--                              bound: the most fields the script reads to
--                              count a parameter's systems once (a registry
--                              written before they were counted)
--   lag                        gateway.FollowLag in ms: the furthest behind
--                              Redis's clock (TIME) a write may be stamped
--   nU, {key, value, of}*nU    unique keys: abort if KEYS[key] is held; of, when
--                              not 0, is the KEYS index of the set the key is
--                              filed in for retention (keys.claimedFor)
--   nC, {criteria}*nC          conditional creates: abort if any matches, where
--                              criteria = nG, {n, key*n}*nG, nT, temp*nT, limit
--                              (groups of KEYS indices: OR within, AND across;
--                              temp: scratch KEYS indices); a limit above 0
--                              makes it a cap: abort if limit or more match
--                              (the gateway passes each distinct cap once,
--                              with the smallest limit of those alike)
--   nW, {write}*nW             write = key, id, owner, expect (-1: any), version,
--                              lastUpdated ms, body, all-set key, first, nX,
--                              bare*nX: the index terms are KEYS[first ..
--                              first+nX-1], and bare the KEYS index of each
--                              term's bare entry, used if its system is
--                              over the cap (0: it has none), oldFirst, nOld:
--                              KEYS[oldFirst .. oldFirst+nOld-1] are the
--                              entries the current version is found under,
--                              as read ('x'), removed by the write, nF,
--                              {field, value}*nF: set only where the hash
--                              has none (HSETNX), so the first version's
--                              stays (a referral Task version's milestones:
--                              journey.go), nD, field*nD: deleted from the
--                              hash first (the milestones a version takes
--                              back: an operator's redrive)
--   nJ, {job}*nJ               job = stream key, onlyIf, nF, field/value*nF (a
--                              job, or the change's audit record); onlyIf,
--                              when not 0, is the KEYS index of an index set:
--                              the job is queued only if that set is not
--                              empty
--   nA, {ack}*nA               ack = stream key, group, entry id, consumer: the
--                              job this commit finishes (XACK and XDEL, with the
--                              writes); with a consumer, only while that
--                              consumer still holds it; without, only while the
--                              entry exists (a dead letter re-driven once)
--   nS, field*nS               the fields ("Type index system") the writes are
--                              indexed under, added to the registry when new
--                              (and the generation raised) while the
--                              parameter has fewer than cap. A system beyond
--                              the cap is not registered: its terms are also
--                              indexed bare ('Type:index=code', for a code
--                              without '|': the writes' bare keys), which a
--                              search without a system always reads
--   nO, field*nO               fields the registry every partition shares
--                              refused (register.lua: over the cap counted
--                              across partitions): indexed bare like a
--                              system over the cap, and not registered
--   nR, {key, version}*nR      resources the change was decided on without
--                              writing them (a Consent a referral's delivery
--                              rests on): abort unless each is still at
--                              that version (0: not held)
--
-- Every loop below runs over what the arguments list (writes, terms,
-- systems, keys, criteria, reads), which the gateway bounds per request;
-- none runs over what Redis holds beyond that bound, so a client cannot
-- make one commit hold Redis's one thread for longer than Signpost's
-- limits allow.
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
--   {'limit', i}                   capping criteria i (0-based) matches its limit or more
--   {'read', i, current}           resource read i (0-based) is no longer at its version
--   {'lost'}                       the job is no longer the caller's to finish
--   {'systems'}                    the registry's generation is not the guard
--   {'changed'}                    a resource's index entries are not those
--                                  passed: nothing written; read them again
--   {'behind', i}                  write i (0-based) is stamped before the
--                                  version it replaces: read and stamp again
--   {'clock', i, now}              write i (0-based) is stamped more than lag
--                                  before now, Redis's clock in ms: the clock
--                                  of the process that stamped it is behind
-- The arguments are read by position, without helper closures and with one
-- small table per write: reading them was a fifth of the script's cost.
local a = ARGV
local token = a[1]
local systems, guard, cap, termPrefix, registryBound = KEYS[tonumber(a[2])], a[3], tonumber(a[4]), a[5], tonumber(a[6])
local lag = tonumber(a[7])
local p = 8

local uniques = {}
for i = 1, tonumber(a[p]) do uniques[i] = {KEYS[tonumber(a[p + 1])], a[p + 2], tonumber(a[p + 3])}; p = p + 3 end
p = p + 1
local criteria = {}
for i = 1, tonumber(a[p]) do
  local groups, temps
  groups, temps, p = read_groups(a, p + 1)
  p = p + 1
  criteria[i] = {groups, temps, tonumber(a[p])}
end
p = p + 1
local writes = {}
for i = 1, tonumber(a[p]) do
  -- key, id, owner, expect, version, score, body, all, first term, term
  -- count, where the bare keys' indices start in ARGV, the old entries'
  -- first index and count, the first-only fields' count and where they
  -- start in ARGV, the deleted fields' count and where they start
  local n = tonumber(a[p + 10])
  local nF = tonumber(a[p + 13 + n])
  local d = p + 14 + n + 2 * nF
  local nD = tonumber(a[d])
  writes[i] = {KEYS[tonumber(a[p + 1])], a[p + 2], a[p + 3], tonumber(a[p + 4]), a[p + 5], a[p + 6], a[p + 7],
    KEYS[tonumber(a[p + 8])], tonumber(a[p + 9]), n, p + 11, tonumber(a[p + 11 + n]), tonumber(a[p + 12 + n]),
    nF, p + 14 + n, nD, d + 1}
  p = d + nD
end
p = p + 1
local jobs = {}
for i = 1, tonumber(a[p]) do
  local n = tonumber(a[p + 3]) * 2
  jobs[i] = {KEYS[tonumber(a[p + 1])], p + 4, p + 3 + n, tonumber(a[p + 2])}
  p = p + 3 + n
end
p = p + 1
local acks = {}
for i = 1, tonumber(a[p]) do acks[i] = {KEYS[tonumber(a[p + 1])], a[p + 2], a[p + 3], a[p + 4]}; p = p + 4 end
local nS = tonumber(a[p + 1])
local firstSystem = p + 2
local nO = tonumber(a[firstSystem + nS])
local firstRefused = firstSystem + nS + 1
local nR = tonumber(a[firstRefused + nO])
local firstRead = firstRefused + nO + 1

-- 0. A commit re-sent after its reply was lost (go-redis re-sends on a
-- broken connection) finds its token on its first write: it was applied.
-- This comes before the other checks, which it would now fail. Two separate
-- commits never share a token, however alike their changes.
if #writes > 0 and redis.call('HGET', writes[1][1], 'c') == token then
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
if guard ~= '' and tonumber(redis.call('HGET', systems, '#') or '0') ~= tonumber(guard) then
  return {'systems'}
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
  if written[w[1]] then return redis.error_reply('commit writes one resource twice') end
  written[w[1]] = true
end
for i, c in ipairs(criteria) do
  local set = resolve(c[1], c[2])
  -- At most limit ids (and two for a conditional create, to say whether
  -- one or several match): the limit is ours, so this read is bounded.
  local ids = redis.call('ZRANGE', set, 0, math.max(c[3] - 1, 1))
  cleanup(c[2])
  if c[3] > 0 then
    if #ids >= c[3] then return {'limit', i - 1} end
  elseif #ids > 0 then
    local out = {'matched'}
    for _, id in ipairs(ids) do out[#out + 1] = id end
    return out
  end
end
-- A version's time is stamped by the process that made it, and keyset
-- paging (the export, _lastUpdated) rests on a promise about it that only
-- the store can check: a write lands within lag of its stamp. A process
-- whose clock is behind breaks it; its writes are refused here, and
-- another with a good clock takes the request when it is sent again. A
-- stamp ahead of Redis's clock is taken: another process's clock may be a
-- little ahead. Redis's clock is read once. TIME before a write is allowed
-- where a script is replicated by its effects: Redis 5 and later by
-- default, and Redis 7 (the deployments' image) always.
local now, earliest
if #writes > 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  earliest = now - lag
end
local current = {}
for i, w in ipairs(writes) do
  local cur = tonumber(redis.call('HGET', w[1], 'v') or '0')
  if w[4] ~= -1 and cur ~= w[4] then return {'stale', i - 1, cur} end
  current[i] = cur
  -- The entries the version being replaced is found under, as passed,
  -- must be the ones it lists: the write removes them.
  if cur ~= 0 and (redis.call('HGET', w[1], 'x') or '') ~= table.concat(KEYS, '\n', w[12], w[12] + w[13] - 1) then
    return {'changed'}
  end
  if tonumber(w[6]) < earliest then return {'clock', i - 1, now} end
  -- A version's time never goes back: keyset paging finds the version
  -- current at its snapshot by binary search over them. One stamped
  -- before the version it replaces (its request started before that one
  -- was written) is refused; the gateway reads it again and stamps anew.
  if cur ~= 0 and tonumber(w[6]) < tonumber(redis.call('HGET', w[1], 't' .. cur) or '0') then
    return {'behind', i - 1}
  end
end
-- What the change was decided on is still what it read: a Consent
-- withdrawn since a referral's plan read it stops the referral's delivery
-- here, in the same step, rather than after it is queued.
for i = 1, nR do
  local at = firstRead + 2 * (i - 1)
  local cur = tonumber(redis.call('HGET', KEYS[tonumber(a[at])], 'v') or '0')
  if cur ~= tonumber(a[at + 1]) then return {'read', i - 1, cur} end
end

-- 2. The token systems. One read in the usual case, where every system is
-- known already. A parameter's systems are capped, so that values a client
-- makes up cannot grow the list every search without a system expands to;
-- the terms of a system over the cap are indexed bare as well, and bare
-- entries are always searched. overflow holds the start of such a
-- system's term keys ("…Type:index=system|"), so that each term is looked
-- up once, whatever the number of systems over the cap.
local overflow, overflowing = {}, false
local function overflows(field)
  local typ, index, system = string.match(field, '^(%S+) (%S+) (.*)$')
  overflow[termPrefix .. typ .. ':' .. index .. '=' .. system .. '|'] = true
  overflowing = true
end
for i = 1, nO do overflows(a[firstRefused + i - 1]) end
if nS > 0 then
  local have = redis.call('HMGET', systems, unpack(a, firstSystem, firstSystem + nS - 1))
  local added = false
  for i = 1, nS do
    if not have[i] then
      local field = a[firstSystem + i - 1]
      local typ, index = string.match(field, '^(%S+) (%S+) ')
      if register(systems, typ, index, field, cap, registryBound) then
        added = true
      else
        overflows(field)
      end
    end
  end
  if added then redis.call('HINCRBY', systems, '#', 1) end
end

-- 3. The writes: a new version, re-indexed; old versions stay for vread.
local afterPrefix = #termPrefix + 1
for i, w in ipairs(writes) do
  local key, id, score, first, last = w[1], w[2], w[6], w[9], w[9] + w[10] - 1
  if current[i] ~= 0 then
    -- An entry the new version keeps is moved by its ZADD below (a new
    -- score); only the entries it drops are removed. Most changes (a
    -- delivery recorded, a business status) keep every entry.
    local kept = {}
    for k = first, last do kept[KEYS[k]] = true end
    for k = w[12], w[12] + w[13] - 1 do
      if not kept[KEYS[k]] then redis.call('ZREM', KEYS[k], id) end
    end
  end
  for k = first, last do redis.call('ZADD', KEYS[k], score, id) end
  local terms = table.concat(KEYS, '\n', first, last)
  if overflowing then
    local bares = {}
    for k = first, last do
      local t = KEYS[k]
      -- The first '|' after the prefix ends the system: Type and index
      -- hold none, and the gateway registers a system up to its first '|'.
      local bar = string.find(t, '|', afterPrefix, true)
      -- A code holding '|' has no bare entry (the gateway passes none):
      -- bare, it would read as another system's code, and a search value
      -- with a '|' never reads bare ones.
      local b = tonumber(a[w[11] + k - first])
      if bar and b > 0 and overflow[string.sub(t, 1, bar)] then
        local bare = KEYS[b]
        redis.call('ZADD', bare, score, id)
        bares[#bares + 1] = bare
      end
    end
    if #bares > 0 then terms = terms .. '\n' .. table.concat(bares, '\n') end
  end
  redis.call('ZADD', w[8], score, id)
  redis.call('HSET', key, 'v', w[5], 'c', token, 'o', w[3], 'x', terms, w[5], w[7], 't' .. w[5], score)
  if w[16] > 0 then redis.call('HDEL', key, unpack(a, w[17], w[17] + w[16] - 1)) end
  for k = w[15], w[15] + 2 * w[14] - 1, 2 do redis.call('HSETNX', key, a[k], a[k + 1]) end
end
for _, u in ipairs(uniques) do
  redis.call('SET', u[1], u[2])
  if u[3] > 0 then redis.call('ZADD', KEYS[u[3]], 0, u[1]) end
end
for _, j in ipairs(jobs) do
  if j[4] == 0 or redis.call('EXISTS', KEYS[j[4]]) == 1 then
    redis.call('XADD', j[1], '*', unpack(a, j[2], j[3]))
  end
end
for _, a in ipairs(acks) do
  redis.call('XACK', a[1], a[2], a[3])
  redis.call('XDEL', a[1], a[3])
end
return {'ok'}
