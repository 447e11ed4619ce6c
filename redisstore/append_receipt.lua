-- Appends decision receipts to recipients' logs (receipts.go), each unless
-- its recipient was erased after the decision was made: a receipt still
-- queued on some server must not bring an erased recipient's data back.
-- One call takes a whole batch on a single Redis (one script call, not
-- one per receipt); on a Cluster, where a script's keys share a slot, one
-- receipt.
--
-- A log's time to live is the retention and a day. It is renewed, and the
-- receipts past retention trimmed, only when less than the retention is
-- left (about once a day for a recipient decided for all day, where it
-- was every receipt): a receipt written lives at least the retention, as
-- the log it is in does; a receipt past retention goes at the next
-- renewal or when the log expires, within a day of the retention on a
-- busy log (as on an idle one before). A log with more than the retention
-- and a day left was written under a longer retention: it is trimmed and
-- renewed at once, so that lowering -receipt-days takes effect at the
-- next receipt.
--
-- ARGV[1]  receipts scored below this are past retention and removed
-- ARGV[2]  a log's time to live, ms
-- ARGV[3]  the retention, ms: a log with less time to live left is renewed
-- then, per receipt i (from 1):
--   KEYS[2i-1]   the recipient's receipts (a sorted set)
--   KEYS[2i]     the recipient's current consent (a hash; "_erased" marks
--                an erasure: "<unix ms>|<ledger length>")
--   ARGV[2i+2]   the member: "<decision id>\n<receipt>"
--   ARGV[2i+3]   its score: when the decision was made, unix ms
--
-- Returns, per receipt, 1 when written, 0 when its recipient was erased
-- since.
local renew = tonumber(ARGV[3])
local out = {}
for i = 1, #KEYS / 2 do
  local log = KEYS[2 * i - 1]
  local score = tonumber(ARGV[2 * i + 3])
  local erased = redis.call('HGET', KEYS[2 * i], '_erased')
  local ms = erased and tonumber(string.match(erased, '^(%d+)'))
  if ms and ms >= score then
    out[i] = 0
  else
    redis.call('ZADD', log, score, ARGV[2 * i + 2])
    -- -1 (no time to live: a new log) is below too.
    -- Above the retention and a day: the retention was lowered since.
    local pttl = redis.call('PTTL', log)
    if pttl < renew or pttl > tonumber(ARGV[2]) then
      redis.call('ZREMRANGEBYSCORE', log, '-inf', '(' .. ARGV[1])
      redis.call('PEXPIRE', log, ARGV[2])
    end
    out[i] = 1
  end
end
return out
