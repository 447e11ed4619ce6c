-- Writes consent records for one recipient, atomically.
--
-- KEYS[1]  the recipient's consent hash (Key)
-- KEYS[2]  the recipient's consent ledger: a string of entries, each ended
--          by a newline, only ever appended to
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
-- Returns, per ledger entry appended, two integers: the number of entries
-- after the append (the entry's index + 1) and 1 if applied, 0 if not.
--
-- The ledger is one string rather than a list because a Redis 7.0 list
-- costs about 100 bytes more per recipient (its quicklist and node headers)
-- than the string holding the same entries. The script writes the old bytes
-- followed by the new entries in one SET (exact size; APPEND would reserve
-- up to twice the length), so no entry ever changes. A ledger stored as a
-- list by an earlier version is converted, entries and order kept.

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

-- Fail (WRONGTYPE) now if the hash is something else; read the ledger.
redis.call('HLEN', KEYS[1])
local ledger
local ltype = redis.call('TYPE', KEYS[2]).ok
if ltype == 'list' then
  local old = redis.call('LRANGE', KEYS[2], 0, -1)
  ledger = {}
  for i = 1, #old do
    if string.find(old[i], '\n', 1, true) then
      return redis.error_reply('CONSENTCORRUPT ledger entry contains a newline')
    end
    ledger[i] = old[i] .. '\n'
  end
  ledger = table.concat(ledger)
elseif ltype == 'string' then
  ledger = redis.call('GET', KEYS[2])
elseif ltype == 'none' then
  ledger = ''
else
  return redis.error_reply('WRONGTYPE the consent ledger is neither a string nor a list')
end
if ledger ~= '' and string.sub(ledger, -1) ~= '\n' then
  return redis.error_reply('CONSENTCORRUPT the ledger does not end with a whole entry')
end
local _, n = string.gsub(ledger, '\n', '')
local appended = {}
local function append(entry)
  appended[#appended + 1] = entry .. '\n'
  n = n + 1
  return n
end

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
  out[#out + 1] = append(entry)
  out[#out + 1] = applied and 1 or 0
end

if ARGV[2] == '1' then
  redis.call('HSET', KEYS[1], '_complete', ARGV[1])
  if ARGV[3] ~= '' then
    out[#out + 1] = append(ARGV[3])
    out[#out + 1] = 1
  end
end
redis.call('SET', KEYS[2], ledger .. table.concat(appended)) -- replaces a list too
return out
