-- lease_release.lua — give a lease (a write-back's, a subscription
-- sender's) back only while this holder still holds it (one taken over
-- meanwhile is another's).
--
-- KEYS[1] the lease; ARGV[1] the holder's token
-- Returns 1, or 0 when the lease was no longer this holder's.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
