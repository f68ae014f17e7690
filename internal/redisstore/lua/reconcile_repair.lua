-- reconcile_repair.lua: repair the counters of one SKU from the stock truth of Postgres.
-- held is recomputed from the SKU's live holds (read here, in the same slot, so no hold can be
-- taken or ended in between) and atp := truth - held, where truth = on_hand - allocated.
-- KEYS[1] inv hash   KEYS[2] holds zset   KEYS[3] stock sequence marks (warehouse id -> seq of
-- the last stock event counted in atp)   (one {SKU} slot; hold keys are built from ARGV[3])
-- ARGV[1] truth (on_hand - allocated)
-- ARGV[2] expected atp + held as observed by the caller, or "" to skip the check. atp + held only
--         changes when the truth changes (a confirmation, a late confirmation, a stock delta);
--         if it moved since the caller looked, an update is in flight and the repair waits for
--         the next run rather than race it.
-- ARGV[3] hold key prefix (up to and including "}:")
-- ARGV[4..] pairs: warehouse id, last seq applied in Postgres. A mark below it means that event's
--         delta is still on its way to Redis: the truth already has it, atp not yet; repairing
--         now would count it twice, so the repair waits (code 2).
-- Returns {code, atp before, held before, atp after, held after}:
--   code 1 repaired (or already right), 0 no counters (the SKU needs a rebuild), 2 an update is
--   in flight (nothing done)
local cur = redis.call('HMGET', KEYS[1], 'atp', 'held')
if not cur[1] then
  return {0, 0, 0, 0, 0}
end
local atp = tonumber(cur[1])
local held = tonumber(cur[2] or '0')
if ARGV[2] ~= '' and atp + held ~= tonumber(ARGV[2]) then
  return {2, atp, held, atp, held}
end
for i = 4, #ARGV, 2 do
  if tonumber(redis.call('HGET', KEYS[3], ARGV[i]) or '0') < tonumber(ARGV[i + 1]) then
    return {2, atp, held, atp, held}
  end
end
local live = 0
for _, order in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local qty = redis.call('HGET', ARGV[3] .. order, 'qty')
  if qty then
    live = live + tonumber(qty)
  else
    redis.call('ZREM', KEYS[2], order)
  end
end
local want = tonumber(ARGV[1]) - live
redis.call('HSET', KEYS[1], 'atp', want, 'held', live)
return {1, atp, held, want, live}
