-- Appends one entry to the operations trail, sealed by the writer for the
-- position it read (trail.go): only if the trail is still that long.
--
-- KEYS[1]  the trail (a list, only ever appended to)
-- ARGV[1]  the length the writer read
-- ARGV[2]  the entry
--
-- Returns 1, or -1 when the trail has grown since (read and seal again).
if redis.call('LLEN', KEYS[1]) ~= tonumber(ARGV[1]) then
  return -1
end
redis.call('RPUSH', KEYS[1], ARGV[2])
return 1
