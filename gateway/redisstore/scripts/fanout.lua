-- fanout.lua — give a Task change to the subscriptions it matches: each
-- gets the next event number of its own and the event at the end of its
-- list, and a job to send it; the change's job is finished; all in one
-- step, so an event is numbered once and never skipped or repeated. A
-- change older than one already numbered for the same Task (several
-- workers, a retried job) is finished without an event, so subscribers
-- never see a Task go back to an earlier version.
--
-- KEYS[1]: the subscription queue stream; KEYS[2]: the hash of the last
-- version numbered per Task. Then per subscription i (1-based):
--   KEYS[1+2i] its event counter, KEYS[2+2i] its list of events to send.
-- ARGV: group, consumer, the change's entry id, the change's time (ms),
-- the Task id, the version, the change's traceparent (carried into each
-- send job; '' for none), the most events a subscription's list keeps (the
-- oldest beyond it are dropped: a subscriber away that long sees the gap in
-- the numbers), the client whose Task it is; then nS, {subscription id}*nS
-- (in the order of their KEYS).
-- An event is kept as {"t":ms,"task":id,"v":version,"n":number}, its
-- number last: event_sent.lua recognises an event by that ending.
-- Returns 1, or 0 when the change's job is no longer this consumer's.
local group, consumer, entry = ARGV[1], ARGV[2], ARGV[3]
local task, version, traceparent = ARGV[5], ARGV[6], ARGV[7]
local maxEvents, client, nS = tonumber(ARGV[8]), ARGV[9], tonumber(ARGV[10])
local p = redis.call('XPENDING', KEYS[1], group, entry, entry, 1, consumer)
if #p == 0 then return 0 end
local last = tonumber(redis.call('HGET', KEYS[2], task) or '0')
if tonumber(version) > last then
  redis.call('HSET', KEYS[2], task, version)
  local event = '{"t":' .. ARGV[4] .. ',"task":' .. cjson.encode(task) ..
    ',"v":' .. cjson.encode(version) .. ',"n":'
  for i = 1, nS do
    local num = redis.call('INCR', KEYS[1 + 2 * i])
    if redis.call('RPUSH', KEYS[2 + 2 * i], event .. num .. '}') > maxEvents then
      redis.call('LPOP', KEYS[2 + 2 * i])
    end
    local fields = {'event', 'send', 'subscription', ARGV[10 + i], 'client', client}
    if traceparent ~= '' then
      fields[#fields + 1] = 'traceparent'
      fields[#fields + 1] = traceparent
    end
    redis.call('XADD', KEYS[1], '*', unpack(fields))
  end
end
redis.call('XACK', KEYS[1], group, entry)
redis.call('XDEL', KEYS[1], entry)
return 1
