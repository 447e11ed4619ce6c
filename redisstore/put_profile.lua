-- put_profile.lua: replaces an HCP's descriptive profile fields in one step.
-- See Store.UpsertProfile and Store.Import.
--
-- KEYS[1] profile hash  <prefix>:{hcp}:p
--
-- ARGV[1]   "1": replace the counters too; "0": keep the stored counters
-- ARGV[2..] field, value, field, value, ... (the new profile, and the new
--           counters when ARGV[1] is "1"); never empty
--
-- Counter fields are le, ct and those starting with e:, s:, t: or lc:.
-- Fields starting with j: (operators' journey moves) and dm: (reps'
-- dismissals) are always kept. Every other field is descriptive: all of
-- them are deleted (addresses and attributes no longer present go with
-- them) and the given ones written.
-- Returns the territories field (tr) as it was before ("" when absent),
-- for the territory index (territories.go).

local p = KEYS[1]
local replace_counters = ARGV[1] == '1'

local function is_counter(f)
  if f == 'le' or f == 'ct' then
    return true
  end
  local c = string.sub(f, 1, 2)
  return c == 'e:' or c == 's:' or c == 't:' or string.sub(f, 1, 3) == 'lc:'
end

local function is_kept(f)
  return string.sub(f, 1, 2) == 'j:' or string.sub(f, 1, 3) == 'dm:'
end

local territories = redis.call('HGET', p, 'tr') or ''
local del = {}
local old = redis.call('HKEYS', p)
for i = 1, #old do
  if not is_kept(old[i]) and (replace_counters or not is_counter(old[i])) then
    del[#del + 1] = old[i]
  end
end
-- unpack is bounded by the Lua stack: write in chunks.
for i = 1, #del, 1000 do
  redis.call('HDEL', p, unpack(del, i, math.min(i + 999, #del)))
end
for i = 2, #ARGV, 1000 do
  redis.call('HSET', p, unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
return territories
