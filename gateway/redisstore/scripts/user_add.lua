-- user_add.lua — create a web account only where none exists, in one step,
-- so two operators adding one address cannot overwrite each other.
--
-- KEYS[1] the account
-- ARGV[1] the provider ('' for an operator), ARGV[2] the password's bcrypt
-- hash, ARGV[3] created (ms)
-- Returns 1, or 0 when the account exists already.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'provider', ARGV[1], 'hash', ARGV[2], 'created', ARGV[3], 'disabled', '0')
return 1
