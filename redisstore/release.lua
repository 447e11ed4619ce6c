-- release.lua: gives a reservation back (touches.lua is in front of it).
-- See Store.Release.
--
-- KEYS[1] touch ledger
-- ARGV[1] reservation id
-- ARGV[2] now, unix ms
--
-- Returns 'released', or why not: 'notfound', 'released' twice is
-- 'already', 'sent' (the send event came first), 'expired'.

local horizon, es, version = tl_read(KEYS[1])
if not horizon then
  return redis.error_reply('ARBITERCORRUPT the touch ledger does not decode')
end
for i, e in ipairs(es) do
  if e.res == ARGV[1] then
    if e.st == 'x' then
      return 'already'
    elseif e.st == 's' then
      return 'sent'
    elseif e.exp <= tonumber(ARGV[2]) then
      return 'expired'
    end
    e.st = 'x'
    -- The element after the header is touch i.
    redis.call('LSET', KEYS[1], i, tl_encode(e))
    redis.call('LSET', KEYS[1], 0, tl_header_of(horizon, version + 1))
    return 'released'
  end
end
return 'notfound'
