-- reconcile_observe.lua: read the counters of one SKU together with the sum of its live holds,
-- atomically, for reconciliation. Changes nothing.
-- KEYS[1] inv hash   KEYS[2] holds zset   (one {SKU} slot)   ARGV[1] hold key prefix
-- Returns {1, atp, held, units in live holds, live holds} or {0, 0, 0, units, holds} when the
-- SKU has no counters.
local live, n = 0, 0
for _, order in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local qty = redis.call('HGET', ARGV[1] .. order, 'qty')
  if qty then
    live = live + tonumber(qty)
    n = n + 1
  end
end
local cur = redis.call('HMGET', KEYS[1], 'atp', 'held')
if not cur[1] then
  return {0, 0, 0, live, n}
end
return {1, tonumber(cur[1]), tonumber(cur[2] or '0'), live, n}
