-- later.lua — put a job off until a due time, and finish its current entry,
-- in one step: a crash can leave the job due or pending, never neither.
--
-- KEYS[1]: the queue's set of delayed jobs (score: due time in ms)
-- KEYS[2]: the queue's stream
-- ARGV[1]: due time, Unix ms
-- ARGV[2]: the job, stored as it is (opaque here: a JSON object of its
--          fields, which promote.lua reads; unique: it holds the job's
--          delivery id and attempt)
-- ARGV[3]: the consumer group; ARGV[4]: the entry id now being finished;
-- ARGV[5]: the consumer that holds it
-- Returns 1, or 0 when the job is no longer this consumer's (another worker
-- reclaimed it and handles it now): then nothing changes.
local p = redis.call('XPENDING', KEYS[2], ARGV[3], ARGV[4], ARGV[4], 1, ARGV[5])
if #p == 0 then return 0 end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('XACK', KEYS[2], ARGV[3], ARGV[4])
redis.call('XDEL', KEYS[2], ARGV[4])
return 1
