-- apply_event.lua: applies one outcome event to one HCP, atomically and
-- idempotently. See Store.ApplyEvent.
--
-- KEYS[1] profile hash      <prefix>:{hcp}:p
-- KEYS[2] dedup sorted set  <prefix>:{hcp}:ev
-- KEYS[3] history list      <prefix>:{hcp}:h
-- KEYS[4] touch ledger      <prefix>:{hcp}:t
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
-- ARGV[13] the touch to add when the event is one (arbiter.EventType.IsTouch),
--          else ""
-- ARGV[14] message id ("" for none)
-- ARGV[15] reservation id ("" for none)
-- ARGV[16] touch retention cutoff, unix ms
-- ARGV[17] maximum touches
-- ARGV[18] a dismissal of a suggestion as not relevant: the profile field to
--          write (dm:<action id>), else ""
-- ARGV[19] its value, "<occurred ms>|<principal>"
-- ARGV[20] dismissal retention cutoff, unix ms: older dismissal fields go
--
-- A touch event quoting a reservation on the same channel turns that
-- reservation into the sent touch (also a released or expired one: the
-- send happened), replacing a touch of the same message id that a
-- delivery reported first; otherwise a touch with the channel and message
-- id of a sent touch already in the ledger (the delivery of a send) adds
-- nothing; otherwise the touch is added (a second send quoting the same
-- reservation with another message id is a second touch). Touches
-- are kept as touches.lua says, which runs in front of this script.
--
-- Returns 0 applied, 1 duplicate, 2 no such profile, 3 corrupt counter,
-- 4 corrupt touch ledger.
-- Nothing is written unless it returns 0: every stored value is read and
-- parsed before the first write.
--
-- Decay: the decayed counters (fields e:, s: and t:) hold their values as of
-- one time per HCP, the field ct (unix ms). An event at te moves that time
-- to T = max(te, ct): every counter is decayed from ct to T, and the event's
-- weight is added as decayed from te to T:
--   v = v0 * 2^(-(T-ct)/h) + w * 2^(-(T-te)/h)
-- so an event older than ct (out of order) gives the same value at any later
-- time as if the events had arrived in order. One shared time instead of one
-- per counter keeps the hash small (13 bytes per counter); the price is that
-- an event newer than ct rewrites every counter. A counter in the form of
-- earlier versions, "<value>|<t0 ms>", is refused as corrupt (Migrate
-- converts it), as is a counter without ct. Last-contact and
-- last-engagement times keep the maximum. Values are written with 12
-- significant digits.

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
-- Fail (WRONGTYPE) now, before any write, if the history is not a list.
redis.call('LLEN', hist)
local touch = ARGV[13]
local th, tes_, tver
if touch ~= '' then
  th, tes_, tver = tl_read(KEYS[4])
  if not th then
    return 4
  end
end

local function is_decayed(f)
  local c = string.sub(f, 1, 2)
  return c == 'e:' or c == 's:' or c == 't:'
end

local all = redis.call('HGETALL', p)
local cur = {}
local ct = nil
for i = 1, #all, 2 do
  if all[i] == 'ct' then
    ct = tonumber(all[i + 1])
    if not ct then
      return 3
    end
  end
  cur[all[i]] = all[i + 1]
end

-- The new common time, and each counter's value as of it.
local T = te
if ct and ct > T then
  T = ct
end
local vals = {}
for f, v in pairs(cur) do
  if is_decayed(f) then
    local v0 = tonumber(v)
    if not v0 or not ct or v0 ~= v0 or v0 == math.huge or v0 == -math.huge then
      return 3
    end
    vals[f] = {v0, ct}
  end
end

local sets = {}
local changed = {}
local function add(field, w)
  local e = vals[field]
  if not e then
    e = {0, T}
    vals[field] = e
  end
  e[1] = e[1] * 2 ^ (-(T - e[2]) / h) + w * 2 ^ (-(T - te) / h)
  e[2] = T
  changed[field] = true
end

local function fmt(v)
  return string.format('%.12g', v)
end

local function keep_max(field)
  local c = cur[field]
  if c then
    local t0 = tonumber(c)
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
  add('e:' .. ch, w)
end
if w > 0 then
  if topic ~= '' then
    add('t:' .. topic, w)
  end
  ok = keep_max('le') and ok
end
if contact then
  add('s:' .. ch, 1)
  ok = keep_max('lc:' .. ch) and ok
end
if not ok then
  return 3
end

-- Every counter moves to T when the common time advances; otherwise only
-- the ones the event touched.
local rewrite_all = ct == nil or T ~= ct
for f, e in pairs(vals) do
  if rewrite_all or changed[f] then
    if e[2] ~= T then
      e[1] = e[1] * 2 ^ (-(T - e[2]) / h)
    end
    sets[#sets + 1] = f
    sets[#sets + 1] = fmt(e[1])
  end
end
if rewrite_all and next(vals) ~= nil then
  sets[#sets + 1] = 'ct'
  sets[#sets + 1] = string.format('%.0f', T)
end

if #sets > 0 then
  redis.call('HSET', p, unpack(sets))
end
if touch ~= '' then
  local msg, res, add, changed = ARGV[14], ARGV[15], true, false
  local ech = string.match(touch, '^%d+|[srx]|(%d+)|')
  if res ~= '' then
    for _, e in ipairs(tes_) do
      -- The reservation becomes this send only if it is for the same
      -- channel and not already another message's send.
      if e.res == res and tostring(e.ch) == ech and (e.st ~= 's' or e.msg == '' or e.msg == msg) then
        if e.st ~= 's' then
          e.st, e.at = 's', te
          if e.msg == '' then
            e.msg = msg
          end
          changed = true
        end
        add = false
        -- A delivery reported before this send added a touch of the same
        -- message: the reservation is that touch now, so drop it.
        if e.msg ~= '' then
          local kept = {}
          for _, o in ipairs(tes_) do
            if o == e or not (o.msg == e.msg and o.st == 's' and o.res == '' and o.ch == e.ch) then
              kept[#kept + 1] = o
            end
          end
          changed = changed or #kept ~= #tes_
          tes_ = kept
        end
        break
      end
    end
  end
  if add and msg ~= '' then
    for _, e in ipairs(tes_) do
      if e.msg == msg and e.st == 's' and tostring(e.ch) == ech then
        add = false
        break
      end
    end
  end
  if add then
    tl_add(KEYS[4], th, tes_, tl_parse(touch), touch, tonumber(ARGV[16]), tonumber(ARGV[17]), tver)
  elseif changed then
    tl_write(KEYS[4], th, tes_, tonumber(ARGV[16]), tonumber(ARGV[17]), tver)
  end
end
-- A dismissal keeps the latest per action; older ones than the retention
-- go, so that the profile holds the dismissals that may still count.
if ARGV[18] ~= '' then
  local drop = {}
  local dcut = tonumber(ARGV[20])
  for f, v in pairs(cur) do
    if string.sub(f, 1, 3) == 'dm:' and f ~= ARGV[18] then
      local ms = tonumber(string.match(v, '^(%d+)'))
      if not ms or ms < dcut then
        drop[#drop + 1] = f
      end
    end
  end
  if #drop > 0 then
    redis.call('HDEL', p, unpack(drop))
  end
  local prev = cur[ARGV[18]]
  local pms = prev and tonumber(string.match(prev, '^(%d+)'))
  if not pms or pms < te then
    redis.call('HSET', p, ARGV[18], ARGV[19])
  end
end
redis.call('LPUSH', hist, ARGV[11])
redis.call('LTRIM', hist, 0, tonumber(ARGV[12]) - 1)
redis.call('ZREMRANGEBYSCORE', ev, '-inf', '(' .. ARGV[4])
redis.call('ZADD', ev, ARGV[3], id)
redis.call('PEXPIRE', ev, ARGV[5])
return 0
