-- Converts one recipient's consent ledger of an earlier version (Migrate).
--
-- KEYS[1]  the old ledger (a string or a list)
-- KEYS[2]  the new ledger (a list); must not exist yet
-- ARGV[1]  the old ledger's type as read ("string" or "list")
-- ARGV[2]  the old ledger as read: the string, or the list's entries
--          joined by newlines
-- ARGV[3..] the entries in the current format, in order
--
-- Returns 1 converted, 0 the old ledger changed since it was read (read it
-- again), 2 a new ledger exists already (refused: never merge two).

if redis.call('EXISTS', KEYS[2]) == 1 then
  return 2
end
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
for i = 3, #ARGV, 1000 do
  redis.call('RPUSH', KEYS[2], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
redis.call('DEL', KEYS[1])
return 1
