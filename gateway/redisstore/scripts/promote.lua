-- promote.lua — move jobs that are due from the delayed set back onto the
-- stream. Several workers may run it at once: each job moves once, since
-- ZREM and XADD happen together in one script.
--
-- A delayed job is one member of a sorted set, so its fields are kept as
-- one JSON object (later.lua stores it as the caller encoded it): the one
-- structure a script decodes, and it is stored data, not an argument.
--
-- KEYS[1]: the queue's set of delayed jobs; KEYS[2]: the queue's stream
-- ARGV[1]: now, Unix ms; ARGV[2]: how many to move at most
-- Returns the number moved.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do
  local fields = cjson.decode(member)
  local args = {}
  for k, v in pairs(fields) do
    args[#args + 1] = k
    args[#args + 1] = v
  end
  redis.call('XADD', KEYS[2], '*', unpack(args))
  redis.call('ZREM', KEYS[1], member)
end
return #due
