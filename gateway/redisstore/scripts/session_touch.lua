-- session_touch.lua — read a web session and keep it alive for another idle
-- period; a session whose account is gone or disabled is ended instead.
--
-- The account's key is built here from the session's address (it shares the
-- hash tag, so the slot): the cookie carries nothing but the token, so the
-- caller cannot name the account beforehand.
--
-- KEYS[1] the session
-- ARGV[1] the idle lifetime (ms), ARGV[2] the account key prefix
-- Returns {csrf, created ms, email, provider}, or false.
local s = redis.call('HMGET', KEYS[1], 'csrf', 'created', 'email')
if not s[1] then return false end
local u = redis.call('HMGET', ARGV[2] .. s[3], 'disabled', 'provider')
if u[1] ~= '0' then
  redis.call('DEL', KEYS[1])
  return false
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return {s[1], s[2], s[3], u[2] or ''}
