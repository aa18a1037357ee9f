-- take.lua — claim a job for handling, if this consumer still holds it.
--
-- A job can wait in a worker's lane after it was read; meanwhile another
-- worker may have reclaimed it as abandoned. Before sending, a worker
-- checks the job is still pending for it and resets its idle time (so it is
-- not reclaimed while it is being sent), in one step.
-- KEYS[1]: the stream. ARGV[1]: group; ARGV[2]: consumer; ARGV[3]: entry id.
-- Returns 1 when taken, 0 when the job is no longer this consumer's.
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2])
if #p == 0 then return 0 end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
return 1
