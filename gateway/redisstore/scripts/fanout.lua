-- fanout.lua — give a Task change to the subscriptions it matches: each
-- gets the next event number of its own and the event at the end of its
-- list, and a job to send it; the change's job is finished; all in one
-- step, so an event is numbered once and never skipped or repeated. A
-- change older than one already numbered for the same Task (several
-- workers, a retried job) is finished without an event, so subscribers
-- never see a Task go back to an earlier version.
--
-- KEYS[1]: the subscription queue stream; KEYS[2]: the hash of the last
-- version numbered per Task. Then per subscription i:
--   KEYS[2+2i-1] its event counter, KEYS[2+2i] its list of events to send.
-- ARGV[1]: group; ARGV[2]: consumer; ARGV[3]: the change's entry id;
-- ARGV[4]: the event (JSON without its number: {"t":..,"task":..,"v":..});
-- ARGV[5]: the Task id; ARGV[6]: the version; ARGV[7]: the change's
-- traceparent, carried into each send job ('' for none);
-- ARGV[8]: the most events a subscription's list keeps (the oldest beyond
-- it are dropped: a subscriber away that long sees the gap in the numbers);
-- ARGV[9..]: per subscription, its id then its client.
-- Returns 1, or 0 when the change's job is no longer this consumer's.
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2])
if #p == 0 then return 0 end
local last = tonumber(redis.call('HGET', KEYS[2], ARGV[5]) or '0')
if tonumber(ARGV[6]) > last then
  redis.call('HSET', KEYS[2], ARGV[5], ARGV[6])
  local n = (#KEYS - 2) / 2
  for i = 1, n do
    local num = redis.call('INCR', KEYS[1 + 2 * i])
    local ev = string.sub(ARGV[4], 1, -2) .. ',"n":' .. num .. '}'
    if redis.call('RPUSH', KEYS[2 + 2 * i], ev) > tonumber(ARGV[8]) then
      redis.call('LPOP', KEYS[2 + 2 * i])
    end
    local fields = {'event', 'send', 'subscription', ARGV[7 + 2 * i], 'client', ARGV[8 + 2 * i]}
    if ARGV[7] ~= '' then
      fields[#fields + 1] = 'traceparent'
      fields[#fields + 1] = ARGV[7]
    end
    redis.call('XADD', KEYS[1], '*', unpack(fields))
  end
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
return 1
