-- user_change.lua — set fields of an existing web account and, when told to,
-- end every session it has and forget every browser trusted for it, in one
-- step; it never creates an account.
--
-- The sessions' and devices' keys are known only from the digests the
-- account's sets hold: the caller reads the sets, then runs this with every
-- key in KEYS and the digests it read in ARGV, and the script checks the
-- sets still hold exactly those (a sign-in racing a disable would otherwise
-- keep its session). The check costs one SCARD and one SISMEMBER per digest
-- passed: the work follows the arguments, never what the sets have become.
--
-- KEYS[1] the account, KEYS[2] its sessions set, KEYS[3] its devices set,
-- KEYS[4 .. 3+nS] the sessions read, then KEYS[4+nS .. 3+nS+nD] the devices
-- read (in the order of their digests below)
-- ARGV: signOut ('1' to sign the account out, '0' not; with '0', nS and nD
--       are 0), nF, {field, value}*nF, nS, {session digest}*nS,
--       nD, {device digest}*nD
-- Returns 'ok'; 'absent' when there is no such account; 'changed' when a
-- set no longer holds exactly the digests read (nothing is written; the
-- caller reads them again).
local signOut = ARGV[1] == '1'
local nF = tonumber(ARGV[2])
local p = 3 + 2 * nF
local sets = {}
for i = 1, 2 do
  local n = tonumber(ARGV[p])
  sets[i] = {first = p + 1, n = n}
  p = p + 1 + n
end
if redis.call('EXISTS', KEYS[1]) == 0 then return 'absent' end
if signOut then
  for i, set in ipairs(sets) do
    if redis.call('SCARD', KEYS[1 + i]) ~= set.n then return 'changed' end
    for a = set.first, set.first + set.n - 1 do
      if redis.call('SISMEMBER', KEYS[1 + i], ARGV[a]) == 0 then return 'changed' end
    end
  end
end
if nF > 0 then redis.call('HSET', KEYS[1], unpack(ARGV, 3, 2 + 2 * nF)) end
if signOut then
  for k = 4, 3 + sets[1].n + sets[2].n do redis.call('DEL', KEYS[k]) end
  redis.call('DEL', KEYS[2], KEYS[3])
end
return 'ok'
