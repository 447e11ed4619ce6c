-- Appends one decision receipt to a recipient's log (receipts.go), unless
-- the recipient was erased after the decision was made: a receipt still
-- queued on some server must not bring an erased recipient's data back.
--
-- KEYS[1]  the recipient's receipts (a sorted set)
-- KEYS[2]  the recipient's current consent (a hash; "_erased" marks an
--          erasure: "<unix ms>|<ledger length>")
-- ARGV[1]  the member: "<decision id>\n<receipt>"
-- ARGV[2]  its score: when the decision was made, unix ms
-- ARGV[3]  receipts scored below this are past retention and removed
-- ARGV[4]  the log's time to live, ms
--
-- Returns 1 when written, 0 when the recipient was erased since.
local erased = redis.call('HGET', KEYS[2], '_erased')
if erased then
  local ms = tonumber(string.match(erased, '^(%d+)'))
  if ms and ms >= tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
