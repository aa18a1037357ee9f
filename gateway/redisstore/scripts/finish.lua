-- finish.lua — finish a job without recording an outcome (a job that cannot
-- be read, or that has nothing to do), if this consumer still holds it.
-- KEYS[1]: the stream. ARGV[1]: group; ARGV[2]: consumer; ARGV[3]: entry id.
-- Returns 1 when finished, 0 when the job is no longer this consumer's.
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2])
if #p == 0 then return 0 end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
return 1
