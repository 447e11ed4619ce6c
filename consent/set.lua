-- Writes consent records for one recipient, atomically.
--
-- KEYS[1]  the recipient's consent hash (Key)
-- KEYS[2]  the recipient's consent ledger (a list, append-only)
-- ARGV[1]  recorded_at, Unix milliseconds (the Go server's clock)
-- ARGV[2]  "1" to write the completeness marker, "0" not to
-- ARGV[3]  ledger entry for a marker-only write (no records), else ""
-- then, per record, four arguments:
--          hash field (scope), hash value,
--          ledger entry to append if the record applies, and if it does not
--
-- A record becomes current for its scope iff there is no current record, or
-- it was captured later, or at the same millisecond with a more restrictive
-- status (barred over opt_out over pending over opt_in over cleared; the same order as
-- Status.restrictiveness in evaluate.go). Either way a ledger entry is
-- appended: the ledger proves every acknowledged change.
--
-- Returns, per ledger entry appended, two integers: the ledger length after
-- the append (the entry's index + 1) and 1 if applied, 0 if not.

local rank = {cleared = 0, opt_in = 1, pending = 2, opt_out = 3, barred = 4}

-- parse returns the capture time and status rank of a hash value, or nil.
local function parse(v)
  local ms, status = string.match(v, '^(%-?%d+)|([%a_]+)|')
  if ms == nil or rank[status] == nil then
    return nil
  end
  return tonumber(ms), rank[status]
end

-- Every check that can fail comes before the first write: an error in a
-- script does not roll back the writes made before it.

-- Fail (WRONGTYPE) now if either key holds something else.
redis.call('HLEN', KEYS[1])
redis.call('LLEN', KEYS[2])

-- Refuse if a current value is undecodable: it may be a withdrawal, which a
-- new record must not silently replace.
for i = 4, #ARGV, 4 do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  if cur and parse(cur) == nil then
    return redis.error_reply('CONSENTCORRUPT current consent value does not decode')
  end
end

local out = {}
for i = 4, #ARGV, 4 do
  local field, new = ARGV[i], ARGV[i + 1]
  -- Read again: an earlier record of this batch may have the same scope.
  local cur = redis.call('HGET', KEYS[1], field)
  local applied = true
  if cur then
    local new_ms, new_rank = parse(new)
    local cur_ms, cur_rank = parse(cur)
    applied = new_ms > cur_ms or (new_ms == cur_ms and new_rank > cur_rank)
  end
  if applied then
    redis.call('HSET', KEYS[1], field, new)
  end
  local entry = ARGV[i + 3]
  if applied then
    entry = ARGV[i + 2]
  end
  out[#out + 1] = redis.call('RPUSH', KEYS[2], entry)
  out[#out + 1] = applied and 1 or 0
end

if ARGV[2] == '1' then
  redis.call('HSET', KEYS[1], '_complete', ARGV[1])
  if ARGV[3] ~= '' then
    out[#out + 1] = redis.call('RPUSH', KEYS[2], ARGV[3])
    out[#out + 1] = 1
  end
end
return out
