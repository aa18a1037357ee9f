-- journey.lua — what a referral Task's journey is read from, in one
-- consistent read whose size Signpost bounds, however many versions the
-- Task has (gateway.JourneyRecord, redisstore/journey.go).
--
-- KEYS[1]: the Task's hash.
-- ARGV[1], ARGV[2]: the window read of a Task whose versions did not record
-- their milestones from the first (it was written before they did): at
-- most this many of its newest versions, of at most this many bytes
-- (window.lua).
-- ARGV[3]: the field its first version sets when versions record them.
-- ARGV[4]: nM, then nM fields: the milestones', each set by the first
-- version to reach it (commit.lua).
-- Returns {current version (0: not held, and nothing else), owner,
-- recorded (1: its versions recorded their milestones from the first; 0:
-- they did not, and the milestones are not read), the nM milestones'
-- values (false: not reached), then versions: version, lastUpdated ms,
-- body: the first, then, newest first, the current one (recorded) or the
-- newest the window holds (not recorded)}.
-- Besides the few fields, it reads two bodies of a recorded Task, each
-- within the body limit, and of another the first and the window's.
local key = KEYS[1]
local current = tonumber(redis.call('HGET', key, 'v') or '0')
if current == 0 then return {0} end
local nM = tonumber(ARGV[4])
local got = redis.call('HMGET', key, 'o', ARGV[3], unpack(ARGV, 5, 4 + nM))
local recorded = got[2] and 1 or 0
local out = {current, got[1] or '', recorded}
for i = 1, nM do out[3 + i] = recorded == 1 and got[2 + i] end
newest(key, 1, 1, 0, out)
if current > 1 then
  if recorded == 1 then
    newest(key, current, current, 0, out)
  else
    newest(key, current, math.max(current - tonumber(ARGV[1]) + 1, 2), tonumber(ARGV[2]), out)
  end
end
return out
