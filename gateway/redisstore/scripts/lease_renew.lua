-- lease_renew.lua — extend a lease (a write-back's, a subscription
-- sender's) only while this holder still holds it.
--
-- KEYS[1] the lease; ARGV[1] the holder's token, ARGV[2] the new lifetime (ms)
-- Returns 1, or 0 when the lease is lost.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
