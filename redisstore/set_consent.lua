-- Writes consent records for one recipient, atomically. See
-- Store.SetConsentMany; key layout in keys.go, value formats in
-- consent_codec.go.
--
-- KEYS[1]  the recipient's consent hash
-- KEYS[2]  the recipient's consent ledger: a list, only ever appended to
-- KEYS[3]  the recipient's idempotency keys: a hash, key -> first seq
-- KEYS[4]  the ledger of an earlier version; must not exist (Migrate)
-- ARGV[1]  recorded_at, Unix milliseconds (the Go server's clock)
-- ARGV[2]  "1" to write the completeness marker, "0" not to
-- ARGV[3]  ledger entry for a marker-only write (no records), else ""
-- ARGV[4]  idempotency key, or "": a key already in KEYS[3] writes nothing
-- ARGV[5]  the statuses from the least to the most restrictive, space-
--          separated (consent.PrecedenceOrder: the order is written there
--          alone)
-- ARGV[6]  the ledger length the writer read, when it sealed the entries
--          (chain.go): the entries carry chained MACs computed for exactly
--          that position, so a write that finds another length writes
--          nothing and returns {-1}, for the writer to read and seal
--          again; "" for an unsealed write
-- then, per record, five arguments:
--          hash field (scope), hash value,
--          ledger entry to append if the record applies, and if it does not,
--          and "1" or "0" when the writer worked out (sealing) whether it
--          applies: the script's own answer must agree, or it writes
--          nothing and returns {-2} (the current consent changed since
--          the writer read it); "" when it did not
--
-- A record becomes current for its scope iff there is no current record,
-- or it was captured later, or at the same millisecond with a status of
-- higher precedence, or at the same millisecond with the same status and
-- an earlier expiry (0, no expiry, is the latest): consent.Supersedes. Either way a ledger entry is appended: the ledger
-- proves every acknowledged change. Each entry is stored as
-- "3|<seq>|<entry>", seq being its index in the list: appending is O(1)
-- whatever the ledger's length (RPUSH, LLEN).
--
-- Returns, per ledger entry appended, two integers: its sequence number
-- and 1 if applied, 0 if not; an empty array when the idempotency key was
-- already used.

local rank = {}
do
  local i = 0
  for name in string.gmatch(ARGV[5], '%S+') do
    rank[name] = i
    i = i + 1
  end
end

-- parse returns the capture time, status rank and expiry (nil for none)
-- of a hash value, or nil.
local function parse(v)
  local ms, status, expires = string.match(v, '^(%-?%d+)|([%a_]+)|(%-?%d+)|')
  if ms == nil or rank[status] == nil then
    return nil
  end
  expires = tonumber(expires)
  if expires == 0 then
    expires = nil
  end
  return tonumber(ms), rank[status], expires
end

-- Every check that can fail comes before the first write: an error in a
-- script does not roll back the writes made before it.
if redis.call('EXISTS', KEYS[4]) == 1 then
  return redis.error_reply('ARBITERNOTMIGRATED the consent ledger is in an earlier format')
end
-- Fail (WRONGTYPE) now if a key is something else.
redis.call('HLEN', KEYS[1])
local n = redis.call('LLEN', KEYS[2])
local op = ARGV[4]
if op ~= '' and redis.call('HEXISTS', KEYS[3], op) == 1 then
  return {}
end
if ARGV[6] ~= '' and tonumber(ARGV[6]) ~= n then
  return {-1}
end

-- Refuse if a current value is undecodable: it may be a withdrawal, which a
-- new record must not silently replace. A new value that does not parse
-- (a status the precedence list lacks) is refused here too, before any
-- write, rather than fail half-way.
for i = 7, #ARGV, 5 do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  if cur and parse(cur) == nil then
    return redis.error_reply('ARBITERCORRUPT current consent value does not decode')
  end
  if parse(ARGV[i + 1]) == nil then
    return redis.error_reply('ARBITERCORRUPT new consent value does not parse')
  end
end

local out = {}
local first = n
local function append(entry)
  redis.call('RPUSH', KEYS[2], '3|' .. n .. '|' .. entry)
  out[#out + 1] = n
  n = n + 1
end

-- A sealed write's expectations are checked before any write too: each
-- record's outcome follows from the current values and the records before
-- it in this write.
do
  local seen = {}
  for i = 7, #ARGV, 5 do
    if ARGV[i + 4] ~= '' then
      local cur = seen[ARGV[i]] or redis.call('HGET', KEYS[1], ARGV[i])
      local applied = true
      if cur then
        local new_ms, new_rank, new_exp = parse(ARGV[i + 1])
        local cur_ms, cur_rank, cur_exp = parse(cur)
        applied = new_ms > cur_ms or (new_ms == cur_ms and new_rank > cur_rank) or
          (new_ms == cur_ms and new_rank == cur_rank and new_exp ~= nil and (cur_exp == nil or new_exp < cur_exp))
      end
      if (applied and '1' or '0') ~= ARGV[i + 4] then
        -- The current consent changed since the writer read it, without
        -- the ledger growing (an erasure): read and seal again.
        return {-2}
      end
      if applied then
        seen[ARGV[i]] = ARGV[i + 1]
      end
    end
  end
end

for i = 7, #ARGV, 5 do
  local field, new = ARGV[i], ARGV[i + 1]
  -- Read again: an earlier record of this batch may have the same scope.
  local cur = redis.call('HGET', KEYS[1], field)
  local applied = true
  if cur then
    local new_ms, new_rank, new_exp = parse(new)
    local cur_ms, cur_rank, cur_exp = parse(cur)
    applied = new_ms > cur_ms or (new_ms == cur_ms and new_rank > cur_rank) or
      (new_ms == cur_ms and new_rank == cur_rank and new_exp ~= nil and (cur_exp == nil or new_exp < cur_exp))
  end
  if applied then
    redis.call('HSET', KEYS[1], field, new)
    append(ARGV[i + 2])
  else
    append(ARGV[i + 3])
  end
  out[#out + 1] = applied and 1 or 0
end

if ARGV[2] == '1' then
  redis.call('HSET', KEYS[1], '_complete', ARGV[1])
  if ARGV[3] ~= '' then
    append(ARGV[3])
    out[#out + 1] = 1
  end
end
if op ~= '' then
  redis.call('HSET', KEYS[3], op, first)
end
-- The version: the ledger's length. A booking compares it (reserve.lua).
redis.call('HSET', KEYS[1], '_v', n)
return out
