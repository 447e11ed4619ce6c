-- release.lua: gives a reservation back (touches.lua is in front of it).
-- See Store.Release.
--
-- KEYS[1] touch ledger
-- ARGV[1] reservation id
-- ARGV[2] now, unix ms
-- ARGV[3] retention cutoff, unix ms
-- ARGV[4] maximum touches
--
-- Returns 'released', or why not: 'notfound', 'released' twice is
-- 'already', 'sent' (the send event came first), 'expired'.

local horizon, es = tl_read(KEYS[1])
if not horizon then
  return redis.error_reply('ARBITERCORRUPT the touch ledger does not decode')
end
for _, e in ipairs(es) do
  if e.res == ARGV[1] then
    if e.st == 'x' then
      return 'already'
    elseif e.st == 's' then
      return 'sent'
    elseif e.exp <= tonumber(ARGV[2]) then
      return 'expired'
    end
    e.st = 'x'
    tl_write(KEYS[1], horizon, es, tonumber(ARGV[3]), tonumber(ARGV[4]))
    return 'released'
  end
end
return 'notfound'
