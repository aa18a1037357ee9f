-- fanout.lua — give a Task change to the subscriptions it matches: each
-- gets the next event number of its own and the event at the end of its
-- list, and a job to send it; all in one step, so an event is numbered
-- once and never skipped or repeated. A change no newer than one already
-- numbered for the same Task (several workers, a retried job) numbers
-- nothing, so subscribers never see a Task go back to an earlier version,
-- and numbering the same (Task, version) again is harmless.
--
-- Given the change's job (its entry id not empty), the script also
-- finishes it, in the same step, and does anything only while the job is
-- still this consumer's: the job's stream is then KEYS[1] (a store that
-- does not spread, or a Task made before spreading: the job, the send
-- jobs and the subscriptions' keys all under the plain tag). Without it
-- the script only numbers, and the caller finishes the job in its own
-- partition afterwards (subscriptions.go, Fanout: a crash between the two
-- leaves the job pending, and its retry numbers nothing again).
--
-- KEYS[1]: the subscription queue stream the send jobs go to; KEYS[2]: the
-- hash of the last version numbered per Task. Then per subscription i
-- (1-based): KEYS[1+2i] its event counter, KEYS[2+2i] its list of events
-- to send.
-- ARGV: group, consumer, the change's entry id ('' for none: number only),
-- the change's time (ms), the Task id, the version, the change's
-- traceparent (carried into each send job; '' for none), the most events a
-- subscription's list keeps (the oldest beyond it are dropped: a
-- subscriber away that long sees the gap in the numbers), the client whose
-- Task it is; then nS, {subscription id}*nS (in the order of their KEYS).
-- An event is kept as {"t":ms,"task":id,"v":version,"n":number}, its
-- number last: event_sent.lua recognises an event by that ending.
-- Returns 1, or 0 when the change's job is no longer this consumer's.
local group, consumer, entry = ARGV[1], ARGV[2], ARGV[3]
local task, version, traceparent = ARGV[5], ARGV[6], ARGV[7]
local maxEvents, client, nS = tonumber(ARGV[8]), ARGV[9], tonumber(ARGV[10])
if entry ~= '' then
  local p = redis.call('XPENDING', KEYS[1], group, entry, entry, 1, consumer)
  if #p == 0 then return 0 end
end
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
if entry ~= '' then
  redis.call('XACK', KEYS[1], group, entry)
  redis.call('XDEL', KEYS[1], entry)
end
return 1
