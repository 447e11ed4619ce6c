-- import_touches.lua: adds imported past touches to one recipient's
-- ledger (touches.lua is in front of it). See Store.Import.
--
-- KEYS[1] touch ledger
-- ARGV[1] retention cutoff, unix ms
-- ARGV[2] maximum touches
-- then one touch per argument (state s), as touches.lua encodes it
--
-- A touch whose encoding is already in the ledger, or whose message id a
-- sent touch there has, is not added again: re-running an import adds
-- nothing. Returns how many were added.

local horizon, es, version = tl_read(KEYS[1])
if not horizon then
  return redis.error_reply('ARBITERCORRUPT the touch ledger does not decode')
end
local have, msgs = {}, {}
for _, e in ipairs(es) do
  have[tl_encode(e)] = true
  if e.msg ~= '' and e.st == 's' then
    msgs[e.msg] = true
  end
end
local added = 0
for i = 3, #ARGV do
  local raw = ARGV[i]
  local at, st, ch, pu, exp, res, msg, rest =
    string.match(raw, '^(%d+)|([srx])|(%d+)|(%d+)|(%d+)|([^|]*)|([^|]*)|(.*)$')
  if not at then
    return redis.error_reply('ARBITERCORRUPT an imported touch does not parse')
  end
  if not have[raw] and (msg == '' or not msgs[msg]) then
    have[raw] = true
    if msg ~= '' then
      msgs[msg] = true
    end
    es[#es + 1] = {at = tonumber(at), st = st, ch = tonumber(ch), pu = tonumber(pu), exp = tonumber(exp),
      res = res, msg = msg, rest = rest}
    added = added + 1
  end
end
if added > 0 then
  tl_write(KEYS[1], horizon, es, tonumber(ARGV[1]), tonumber(ARGV[2]), version)
end
return added
