-- writeback.lua — record what was written back to a GP system and finish
-- the notify job, in one step, if this consumer still holds the job.
-- KEYS[1]: the client's write-back hash; KEYS[2]: the notify stream.
-- ARGV[1]: Task id; ARGV[2]: state (stored as it is: JSON the script never
-- reads); ARGV[3]: group; ARGV[4]: consumer;
-- ARGV[5]: entry id. Returns 1, or 0 when the job is no longer this consumer's.
local p = redis.call('XPENDING', KEYS[2], ARGV[3], ARGV[5], ARGV[5], 1, ARGV[4])
if #p == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('XACK', KEYS[2], ARGV[3], ARGV[5])
redis.call('XDEL', KEYS[2], ARGV[5])
return 1
