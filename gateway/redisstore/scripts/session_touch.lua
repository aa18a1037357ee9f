-- session_touch.lua — read a web session and keep it alive for another idle
-- period; a session whose account is gone or disabled is ended instead.
--
-- The cookie carries nothing but the token, so the account is known only
-- from the session: the caller reads the address the session names, then
-- runs this with that account's key, and the script checks the session
-- still names it (the check and the rest are one step). Every key it
-- touches is in KEYS.
--
-- KEYS[1] the session, KEYS[2] the account the caller read it names
-- ARGV[1] the idle lifetime (ms), ARGV[2] the address the caller read
-- Returns {'ok', csrf, created ms, email, provider}; {'none'} when there is
-- no session (or it was ended: its account gone or disabled); {'changed'}
-- when the session no longer names ARGV[2] (the caller reads it again).
local s = redis.call('HMGET', KEYS[1], 'csrf', 'created', 'email')
if not s[1] then return {'none'} end
if s[3] ~= ARGV[2] then return {'changed'} end
local u = redis.call('HMGET', KEYS[2], 'disabled', 'provider')
if u[1] ~= '0' then
  redis.call('DEL', KEYS[1])
  return {'none'}
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return {'ok', s[1], s[2], s[3], u[2] or ''}
