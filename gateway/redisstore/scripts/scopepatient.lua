-- scopepatient.lua — move one Patient stored before Patient ids were scoped
-- per client (under "Patient:{id}") to its owner's key ("Patient:{owner}|{id}"),
-- with every version, its place in the set of all Patients and in each index
-- set of its current version, and index it under its FHIR id. One Patient a
-- call, so a call's work is bounded by one Patient's index terms (as its
-- commit was); run again after a crash, it finds what is left to move.
--
-- KEYS[1] the legacy resource hash, KEYS[2] the scoped one, KEYS[3] the
--         set of all Patients, KEYS[4] the index set of the FHIR id
-- ARGV[1] the legacy id (the FHIR id), ARGV[2] the scoped id, ARGV[3] the
--         owner the caller read
-- Returns 'moved'; 'absent' when there is nothing under the legacy key (moved
-- already); 'changed' when the owner is not the one read; 'taken' when the
-- scoped key is held already (the legacy Patient is left where it is).
local old, new, all, idTerm = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, scoped = ARGV[1], ARGV[2]
local owner = redis.call('HGET', old, 'o')
if not owner then
  redis.call('ZREM', all, id)
  return 'absent'
end
if owner ~= ARGV[3] then return 'changed' end
if redis.call('EXISTS', new) == 1 then return 'taken' end
local score = redis.call('ZSCORE', all, id) or redis.call('HGET', old, 't' .. redis.call('HGET', old, 'v'))
redis.call('RENAME', old, new)
redis.call('ZREM', all, id)
redis.call('ZADD', all, score, scoped)
local terms = redis.call('HGET', new, 'x') or ''
for term in string.gmatch(terms, '[^\n]+') do
  redis.call('ZREM', term, id)
  redis.call('ZADD', term, score, scoped)
end
redis.call('ZADD', idTerm, score, scoped)
if terms == '' then terms = idTerm else terms = terms .. '\n' .. idTerm end
redis.call('HSET', new, 'x', terms)
return 'moved'
