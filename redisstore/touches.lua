-- touches.lua: the touch ledger's format, for the scripts that write it
-- (apply_event.lua, reserve.lua, release.lua): each is run with this
-- library in front of it (touches.go). Counting here mirrors Go's
-- contact.Limit.Full; the policy's logic (which windows, which limits) is
-- Go's alone: scripts get the compiled limits.
--
-- The ledger is a list. Its first element is the header
-- "h|<horizon ms>|1|<version>" (horizon 0: nothing was ever dropped; the
-- version counts the writes, so that a booking can tell the ledger did not
-- change since a check read it); each other element is a touch:
--   <at ms>|<state s,r,x>|<channel>|<purpose>|<expires ms>|<reservation id>|<message id>|<rest>
-- where <rest> (action id and topic) is Go's business.

-- tl_header decodes the header: horizon and version, or nil.
local function tl_header(raw)
  local h, v = string.match(raw, '^h|(%d+)|1|(%d+)$')
  if not h then
    return nil
  end
  return tonumber(h), tonumber(v)
end

local function tl_ms(v)
  return string.format('%.0f', v)
end

local function tl_header_of(horizon, version)
  return 'h|' .. tl_ms(horizon) .. '|1|' .. tl_ms(version)
end

-- tl_read returns the ledger's horizon, touches and version; nil when it
-- does not decode.
local function tl_read(key)
  local raw = redis.call('LRANGE', key, 0, -1)
  local horizon, es = 0, {}
  if #raw == 0 then
    return horizon, es, 0
  end
  local h, version = tl_header(raw[1])
  if not h then
    return nil
  end
  horizon = h
  for i = 2, #raw do
    local at, st, ch, pu, exp, res, msg, rest =
      string.match(raw[i], '^(%d+)|([srx])|(%d+)|(%d+)|(%d+)|([^|]*)|([^|]*)|(.*)$')
    if not at then
      return nil
    end
    es[#es + 1] = {at = tonumber(at), st = st, ch = tonumber(ch), pu = tonumber(pu),
      exp = tonumber(exp), res = res, msg = msg, rest = rest}
  end
  return horizon, es, version
end

local function tl_encode(e)
  return tl_ms(e.at) .. '|' .. e.st .. '|' .. e.ch .. '|' .. e.pu .. '|' .. tl_ms(e.exp) .. '|' ..
    e.res .. '|' .. e.msg .. '|' .. e.rest
end

-- tl_counts: a sent touch, or a reservation not expired at now.
local function tl_counts(e, now)
  return e.st == 's' or (e.st == 'r' and e.exp > now)
end

-- tl_bit reports whether bit k of mask is set (arithmetic: the bit library
-- is not in every Lua that speaks Redis's script API).
local function tl_bit(mask, k)
  return math.floor(mask / 2 ^ k) % 2 == 1
end

-- tl_full reports whether the limit from, to, max, chmask, pumask has no
-- room at now (contact.Limit.Full): the window reaches the horizon, or
-- max touches match. Purpose 0 (unknown) matches every purpose.
local function tl_full(horizon, es, now, from, to, max, chmask, pumask)
  if horizon ~= 0 and from <= horizon then
    return true
  end
  local n = 0
  for _, e in ipairs(es) do
    if e.at >= from and e.at <= to and tl_counts(e, now)
      and (chmask == 0 or tl_bit(chmask, e.ch))
      and (pumask == 0 or e.pu == 0 or tl_bit(pumask, e.pu)) then
      n = n + 1
      if n >= max then
        return true
      end
    end
  end
  return false
end

-- tl_write rewrites the ledger (its version one more): touches (and reservations) older than
-- cutoff are dropped (retention), then the oldest beyond maxn, which moves
-- the horizon: the ledger no longer proves anything before it.
local function tl_write(key, horizon, es, cutoff, maxn, version)
  -- Retention: a touch older than the cutoff goes, and the horizon moves
  -- past it (a policy with a longer retention published later must not
  -- count on what is gone). No window of the policy in use reaches back
  -- that far: the cutoff has an hour of slack.
  local kept = {}
  for _, e in ipairs(es) do
    if e.at >= cutoff or (e.st == 'r' and e.exp >= cutoff) then
      kept[#kept + 1] = e
    elseif e.st == 's' and e.at > horizon then
      horizon = e.at
    end
  end
  if #kept > maxn then
    -- Released reservations never count: they go first, without moving
    -- the horizon; then the oldest touches, which moves it.
    local live = {}
    for _, e in ipairs(kept) do
      if e.st ~= 'x' then
        live[#live + 1] = e
      end
    end
    kept = live
  end
  if #kept > maxn then
    table.sort(kept, function(a, b) return a.at < b.at end)
    local drop = #kept - maxn
    local rest = {}
    for i = 1, #kept do
      if i <= drop then
        if kept[i].at > horizon then
          horizon = kept[i].at
        end
      else
        rest[#rest + 1] = kept[i]
      end
    end
    kept = rest
  end
  redis.call('DEL', key)
  redis.call('RPUSH', key, tl_header_of(horizon, version + 1))
  for i = 1, #kept, 500 do
    local args = {}
    for j = i, math.min(i + 499, #kept) do
      args[#args + 1] = tl_encode(kept[j])
    end
    redis.call('RPUSH', key, unpack(args))
  end
end

-- tl_append appends the encoded touch raw to a ledger at horizon and
-- version (version 0 and no header: an empty ledger), and counts the
-- write in the header.
local function tl_append(key, horizon, raw, version)
  if redis.call('LLEN', key) == 0 then
    redis.call('RPUSH', key, tl_header_of(horizon, version + 1), raw)
    return
  end
  redis.call('RPUSH', key, raw)
  redis.call('LSET', key, 0, tl_header_of(horizon, version + 1))
end

-- tl_add appends the touch e (encoded as raw) to the ledger read as
-- horizon, es. While nothing is due to go (every touch within the
-- retention, the bound not reached) that is one RPUSH; otherwise the
-- ledger is rewritten (tl_write).
local function tl_add(key, horizon, es, e, raw, cutoff, maxn, version)
  local due = #es + 1 > maxn
  if not due then
    for _, o in ipairs(es) do
      if o.at < cutoff and not (o.st == 'r' and o.exp >= cutoff) then
        due = true
        break
      end
    end
  end
  if due or e.at < cutoff then
    es[#es + 1] = e
    tl_write(key, horizon, es, cutoff, maxn, version)
    return
  end
  tl_append(key, horizon, raw, version)
end


-- tl_parse decodes one touch element, or returns nil.
local function tl_parse(raw)
  local at, st, ch, pu, exp, res, msg, rest =
    string.match(raw, '^(%d+)|([srx])|(%d+)|(%d+)|(%d+)|([^|]*)|([^|]*)|(.*)$')
  if not at then
    return nil
  end
  return {at = tonumber(at), st = st, ch = tonumber(ch), pu = tonumber(pu), exp = tonumber(exp),
    res = res, msg = msg, rest = rest}
end
