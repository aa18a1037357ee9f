-- window.lua — shared by the scripts that read a resource's newest versions
-- within a window (prepended to latest.lua and journey.lua at load).

-- newest appends to out, newest first, each version, its lastUpdated ms
-- and its body, from current down to oldest (not below 1): at most bytes
-- of bodies, each body's size read (HSTRLEN) before the body, so one that
-- would pass the bound is never read; the newest is read whatever its
-- size. A version not held is left out, as a read of it would be.
local function newest(key, current, oldest, bytes, out)
  local left, first = bytes, true
  for v = current, math.max(oldest, 1), -1 do
    local size = redis.call('HSTRLEN', key, v)
    if size > 0 then
      if size > left and not first then break end
      left, first = left - size, false
      local r = redis.call('HMGET', key, v, 't' .. v)
      out[#out + 1] = v
      out[#out + 1] = tonumber(r[2]) or 0
      out[#out + 1] = r[1]
    end
  end
end
