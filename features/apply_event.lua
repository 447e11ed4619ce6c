-- apply_event.lua: applies one outcome event to one HCP, atomically and
-- idempotently. See Store.ApplyEvent.
--
-- KEYS[1] profile hash      <prefix>:{hcp}:p
-- KEYS[2] dedup sorted set  <prefix>:{hcp}:ev
-- KEYS[3] history list      <prefix>:{hcp}:h
--
-- ARGV[1]  event id
-- ARGV[2]  occurred at, unix ms (te)
-- ARGV[3]  recorded at (the caller's clock), unix ms: the dedup score
-- ARGV[4]  dedup cutoff, unix ms: ids recorded before it are forgotten
-- ARGV[5]  dedup set TTL, ms
-- ARGV[6]  counter half-life, ms
-- ARGV[7]  channel name
-- ARGV[8]  engagement weight (0: none)
-- ARGV[9]  "1" when the event is a contact
-- ARGV[10] topic ("" for none)
-- ARGV[11] history entry
-- ARGV[12] history length
--
-- Returns 0 applied, 1 duplicate, 2 no such profile, 3 corrupt counter.
-- Nothing is written unless it returns 0: every stored value is read and
-- parsed before the first write.
--
-- Decay: a counter is stored as "<value>|<t0 ms>", its value as of t0.
-- An event at te >= t0 decays the value to te and adds the weight:
--   v = v0 * 2^(-(te-t0)/h) + w, stamped te.
-- An event older than the counter (te < t0, out of order) leaves the stamp at
-- t0 and adds the weight as decayed from te to t0:
--   v = v0 + w * 2^(-(t0-te)/h), stamped t0.
-- Both give the same value at any later time as if the events had arrived in
-- order. Last-contact and last-engagement times keep the maximum.

local p, ev, hist = KEYS[1], KEYS[2], KEYS[3]
local id = ARGV[1]
local tes = ARGV[2]
local te = tonumber(tes)
local cutoff = tonumber(ARGV[4])
local h = tonumber(ARGV[6])
local ch = ARGV[7]
local w = tonumber(ARGV[8])
local contact = ARGV[9] == '1'
local topic = ARGV[10]

local seen = redis.call('ZSCORE', ev, id)
if seen and tonumber(seen) >= cutoff then
  return 1
end
if redis.call('EXISTS', p) == 0 then
  return 2
end

local sets = {}

local function decay_add(field, add)
  local cur = redis.call('HGET', p, field)
  local v, t0s = add, tes
  if cur then
    local i = string.find(cur, '|', 1, true)
    if not i then
      return false
    end
    local v0 = tonumber(string.sub(cur, 1, i - 1))
    t0s = string.sub(cur, i + 1)
    local t0 = tonumber(t0s)
    if not v0 or not t0 then
      return false
    end
    if te >= t0 then
      v = v0 * 2 ^ (-(te - t0) / h) + add
      t0s = tes
    else
      v = v0 + add * 2 ^ (-(t0 - te) / h)
    end
  end
  sets[#sets + 1] = field
  sets[#sets + 1] = string.format('%.17g', v) .. '|' .. t0s
  return true
end

local function keep_max(field)
  local cur = redis.call('HGET', p, field)
  if cur then
    local t0 = tonumber(cur)
    if not t0 then
      return false
    end
    if t0 >= te then
      return true
    end
  end
  sets[#sets + 1] = field
  sets[#sets + 1] = tes
  return true
end

local ok = true
if w ~= 0 then
  ok = decay_add('e:' .. ch, w) and ok
end
if w > 0 then
  if topic ~= '' then
    ok = decay_add('t:' .. topic, w) and ok
  end
  ok = keep_max('le') and ok
end
if contact then
  ok = decay_add('s:' .. ch, 1) and ok
  ok = keep_max('lc:' .. ch) and ok
end
if not ok then
  return 3
end

if #sets > 0 then
  redis.call('HSET', p, unpack(sets))
end
redis.call('LPUSH', hist, ARGV[11])
redis.call('LTRIM', hist, 0, tonumber(ARGV[12]) - 1)
redis.call('ZREMRANGEBYSCORE', ev, '-inf', '(' .. ARGV[4])
redis.call('ZADD', ev, ARGV[3], id)
redis.call('PEXPIRE', ev, ARGV[5])
return 0
