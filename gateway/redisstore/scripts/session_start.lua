-- session_start.lua — keep a new web session, only for an account that
-- exists and is not disabled at this moment (so a sign-in racing a disable
-- cannot win).
--
-- KEYS[1] the account, KEYS[2] the session, KEYS[3] the account's sessions set
-- ARGV[1] the session token's digest, ARGV[2] its CSRF token,
-- ARGV[3] created (ms), ARGV[4] the idle lifetime (ms),
-- ARGV[5] the longest a session lives (ms), ARGV[6] the account's address
-- Returns 1, or 0 when there is no such account (or it is disabled).
if redis.call('HGET', KEYS[1], 'disabled') ~= '0' then return 0 end
redis.call('HSET', KEYS[2], 'email', ARGV[6], 'csrf', ARGV[2], 'created', ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('PEXPIRE', KEYS[3], ARGV[5])
return 1
