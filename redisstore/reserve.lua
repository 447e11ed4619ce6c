-- reserve.lua: books one touch as a reservation, if the compiled limits
-- still have room (touches.lua is in front of it). See Store.Reserve.
--
-- KEYS[1] touch ledger   <prefix>:{hcp}:t
-- KEYS[2] consent hash   <prefix>:{hcp}:consent
-- KEYS[3] profile hash   <prefix>:{hcp}:p
-- ARGV[1] now, unix ms (the Go server's clock)
-- ARGV[2] the largest clock skew allowed between the server and Redis, ms
-- ARGV[3] reservation id
-- ARGV[4] the touch to append (state r)
-- ARGV[5] the consent version the check read ("0": none)
-- ARGV[6] the profile's market, audience and time zone the check read,
--         each followed by '|'
-- ARGV[7] retention cutoff, unix ms
-- ARGV[8] maximum touches
-- ARGV[9] the ledger version the check read ("0": an empty ledger)
-- ARGV[10] the check's receipt, as a member of KEYS[4] ("": none)
-- ARGV[11] its score, the decision time in unix ms
-- ARGV[12] receipts scored below this are past retention and removed
-- ARGV[13] the receipts key's time to live, ms
-- then five per limit: from, to, max, channel mask, purpose mask
--
-- KEYS[4] the recipient's receipts <prefix>:{hcp}:r: a booked touch is
--         written with its receipt, never without (receipts.go)
--
-- Returns {'booked'}; {'exists', state, expires ms} when the reservation id
-- is already in the ledger (a retry: nothing is booked twice), unless it
-- is a reservation that expired, which is booked again; {'full', i}
-- for the first limit (1-based) without room; {'stale'} when consent or the
-- profile changed since the check read them; {'skew', redis ms}.

local now = tonumber(ARGV[1])

-- booked writes the check's receipt beside the touch just booked.
local function booked()
  if ARGV[10] ~= '' then
    redis.call('ZADD', KEYS[4], ARGV[11], ARGV[10])
    redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. ARGV[12])
    redis.call('PEXPIRE', KEYS[4], ARGV[13])
  end
  return {'booked'}
end

local t = redis.call('TIME')
local rnow = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if math.abs(rnow - now) > tonumber(ARGV[2]) then
  return {'skew', tl_ms(rnow)}
end
if (redis.call('HGET', KEYS[2], '_v') or '0') ~= ARGV[5] then
  return {'stale'}
end
-- The profile fields of store.go's fMarket, fAudience and fTimeZone.
local prof = redis.call('HMGET', KEYS[3], 'mk', 'au', 'tz')
if (prof[1] or '') .. '|' .. (prof[2] or '') .. '|' .. (prof[3] or '') .. '|' ~= ARGV[6] then
  return {'stale'}
end
-- The fast path: the ledger is as the check read it (same version), so
-- the check's counts stand: append, without reading it.
local maxn = tonumber(ARGV[8])
local hdr = redis.call('LINDEX', KEYS[1], 0)
if hdr then
  local h, v = tl_header(hdr)
  if h and tl_ms(v) == ARGV[9] and redis.call('LLEN', KEYS[1]) <= maxn then
    tl_append(KEYS[1], h, ARGV[4], v)
    return booked()
  end
elseif ARGV[9] == '0' then
  tl_append(KEYS[1], 0, ARGV[4], 0)
  return booked()
end
local horizon, es, version = tl_read(KEYS[1])
if not horizon then
  return redis.error_reply('ARBITERCORRUPT the touch ledger does not decode')
end
local id = ARGV[3]
local replaced = false
for i, e in ipairs(es) do
  if e.res == id then
    if e.st ~= 'r' or e.exp > now then
      return {'exists', e.st, tl_ms(e.exp)}
    end
    -- The id's reservation expired: book it again, if there is room.
    table.remove(es, i)
    replaced = true
    break
  end
end
local li = 0
for i = 14, #ARGV, 5 do
  li = li + 1
  if tl_full(horizon, es, now, tonumber(ARGV[i]), tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]),
      tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4])) then
    return {'full', li}
  end
end
local e = tl_parse(ARGV[4])
if not e then
  return redis.error_reply('ARBITERCORRUPT the touch to book does not parse')
end
if replaced then
  es[#es + 1] = e
  tl_write(KEYS[1], horizon, es, tonumber(ARGV[7]), maxn, version)
else
  tl_add(KEYS[1], horizon, es, e, ARGV[4], tonumber(ARGV[7]), maxn, version)
end
return booked()
