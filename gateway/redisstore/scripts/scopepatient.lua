-- scopepatient.lua — move one Patient stored before Patient ids were scoped
-- per client (under "Patient:{id}") to its owner's key ("Patient:{owner}|{id}"),
-- with every version, its place in the set of all Patients and in each index
-- set of its current version, and index it under its FHIR id. One Patient a
-- call, so a call's work is bounded by one Patient's index terms (as its
-- commit was); run again after a crash, it finds what is left to move.
--
-- The index sets are named by the legacy hash (its 'x'): the caller reads
-- them with the owner, passes them in KEYS, and the script checks both are
-- still what was read, so every key it touches is one it was given.
--
-- KEYS[1] the legacy resource hash, KEYS[2] the scoped one, KEYS[3] the
--         set of all Patients, KEYS[4] the index set of the FHIR id,
--         KEYS[5 .. 4+nX] the index sets of its current version (its 'x')
-- ARGV    the legacy id (the FHIR id), the scoped id, the owner the caller
--         read, the index keys the caller read (its 'x' as read: '' for
--         none), nX (how many of them are in KEYS)
-- Returns 'moved'; 'absent' when there is nothing under the legacy key (moved
-- already); 'changed' when the owner or the index keys are not the ones
-- read; 'taken' when the scoped key is held already (the legacy Patient is
-- left where it is).
local old, new, all, idTerm = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, scoped, nX = ARGV[1], ARGV[2], tonumber(ARGV[5])
local got = redis.call('HMGET', old, 'o', 'x')
local owner = got[1]
if not owner then
  redis.call('ZREM', all, id)
  return 'absent'
end
if owner ~= ARGV[3] or (got[2] or '') ~= ARGV[4] then return 'changed' end
if redis.call('EXISTS', new) == 1 then return 'taken' end
local score = redis.call('ZSCORE', all, id) or redis.call('HGET', old, 't' .. redis.call('HGET', old, 'v'))
redis.call('RENAME', old, new)
redis.call('ZREM', all, id)
redis.call('ZADD', all, score, scoped)
for k = 5, 4 + nX do
  redis.call('ZREM', KEYS[k], id)
  redis.call('ZADD', KEYS[k], score, scoped)
end
redis.call('ZADD', idTerm, score, scoped)
local terms = ARGV[4]
if terms == '' then terms = idTerm else terms = terms .. '\n' .. idTerm end
redis.call('HSET', new, 'x', terms)
return 'moved'
