-- Appends decision receipts to recipients' logs (receipts.go), each unless
-- its recipient was erased after the decision was made: a receipt still
-- queued on some server must not bring an erased recipient's data back.
-- One call takes a whole batch on a single Redis (one script call, not
-- one per receipt); on a Cluster, where a script's keys share a slot, one
-- receipt.
--
-- ARGV[1]  receipts scored below this are past retention and removed
-- ARGV[2]  a log's time to live, ms
-- then, per receipt i (from 1):
--   KEYS[2i-1]   the recipient's receipts (a sorted set)
--   KEYS[2i]     the recipient's current consent (a hash; "_erased" marks
--                an erasure: "<unix ms>|<ledger length>")
--   ARGV[2i+1]   the member: "<decision id>\n<receipt>"
--   ARGV[2i+2]   its score: when the decision was made, unix ms
--
-- Returns, per receipt, 1 when written, 0 when its recipient was erased
-- since.
local out = {}
for i = 1, #KEYS / 2 do
  local score = tonumber(ARGV[2 * i + 2])
  local erased = redis.call('HGET', KEYS[2 * i], '_erased')
  local ms = erased and tonumber(string.match(erased, '^(%d+)'))
  if ms and ms >= score then
    out[i] = 0
  else
    redis.call('ZADD', KEYS[2 * i - 1], score, ARGV[2 * i + 1])
    redis.call('ZREMRANGEBYSCORE', KEYS[2 * i - 1], '-inf', '(' .. ARGV[1])
    redis.call('PEXPIRE', KEYS[2 * i - 1], ARGV[2])
    out[i] = 1
  end
end
return out
