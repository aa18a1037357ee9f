-- event_sent.lua — remove a subscription's oldest kept event once it was
-- sent, only if it is still that event (so a second sender cannot pop the
-- next one unsent), and record when the subscription last heard from
-- Signpost: the subscriber took it, so no heartbeat has failed since.
--
-- KEYS[1] the subscription's kept events (a list, oldest first, each
-- ending in '"n":<number>}', as fanout.lua writes them),
-- KEYS[2] when it was last sent to
-- KEYS[3] its heartbeats failed in a row (deleted)
-- ARGV[1] the sent event's number, ARGV[2] now (ms)
-- Returns 1.
local tail = '"n":' .. ARGV[1] .. '}'
local head = redis.call('LINDEX', KEYS[1], 0)
if head and string.sub(head, -#tail) == tail then redis.call('LPOP', KEYS[1]) end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('DEL', KEYS[3])
return 1
