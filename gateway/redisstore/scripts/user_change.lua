-- user_change.lua — set fields of an existing web account and, when told to,
-- end every session it has and forget every browser trusted for it, in one
-- step; it never creates an account.
--
-- The sessions' and devices' keys are built from the digests the account's
-- sets hold (prefix .. digest, the same hash tag): they are only known here.
-- Their number is bounded by the sign-in limits.
--
-- KEYS[1] the account, KEYS[2] its sessions set, KEYS[3] its devices set
-- ARGV[1] the session key prefix, ARGV[2] the device key prefix,
-- ARGV[3] '1' to sign the account out, ARGV[4..] field, value pairs
-- Returns 1, or 0 when there is no such account.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
if ARGV[3] == '1' then
  for i, prefix in ipairs({ARGV[1], ARGV[2]}) do
    for _, digest in ipairs(redis.call('SMEMBERS', KEYS[1 + i])) do
      redis.call('DEL', prefix .. digest)
    end
    redis.call('DEL', KEYS[1 + i])
  end
end
return 1
