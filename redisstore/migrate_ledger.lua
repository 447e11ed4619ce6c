-- Converts one recipient's consent ledger of an earlier version (Migrate).
--
-- KEYS[1]  the old ledger (a string or a list)
-- KEYS[2]  the new ledger (a list)
-- ARGV[1]  the old ledger's type as read ("string" or "list")
-- ARGV[2]  the old ledger as read: the string, or the list's entries
--          joined by newlines
-- ARGV[3..] the entries in the current format, in order, without the
--          "3|<seq>|" that this script puts before each
--
-- The entries are appended to the new ledger, numbered on from its length:
-- a server of the earlier version that wrote the old key after a first
-- migration (a rolling deploy) had its entries come after those already
-- converted, so they are appended after them, in their order.
--
-- Returns 1 converted, 0 the old ledger changed since it was read (read it
-- again).

local kind = redis.call('TYPE', KEYS[1]).ok
if kind ~= ARGV[1] then
  return 0
end
local now
if kind == 'string' then
  now = redis.call('GET', KEYS[1])
else
  now = table.concat(redis.call('LRANGE', KEYS[1], 0, -1), '\n')
end
if now ~= ARGV[2] then
  return 0
end
local n = redis.call('LLEN', KEYS[2])
for i = 3, #ARGV do
  redis.call('RPUSH', KEYS[2], '3|' .. n .. '|' .. ARGV[i])
  n = n + 1
end
redis.call('DEL', KEYS[1])
return 1
