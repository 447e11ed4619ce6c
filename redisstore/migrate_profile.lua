-- Gives one profile's per-counter stamps one common time (Migrate).
--
-- KEYS[1]  the profile hash
-- ARGV[1]  the ct field as read ("" when absent)
-- ARGV[2]  the new ct, unix ms
-- then per counter: field, value as read, new value
--
-- Returns 1 converted, 0 something changed since it was read (read again).

local ct = redis.call('HGET', KEYS[1], 'ct') or ''
if ct ~= ARGV[1] then
  return 0
end
for i = 3, #ARGV, 3 do
  if redis.call('HGET', KEYS[1], ARGV[i]) ~= ARGV[i + 1] then
    return 0
  end
end
for i = 3, #ARGV, 3 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2])
end
redis.call('HSET', KEYS[1], 'ct', ARGV[2])
return 1
