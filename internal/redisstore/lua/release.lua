-- release.lua: end one hold by returning its units to atp (payment declined, order refused or
-- cancelled). Idempotent: a missing hold changes nothing.
-- KEYS[1] inv hash   KEYS[2] hold hash   KEYS[3] holds zset   KEYS[4] ended marker  (one {SKU} slot)
-- ARGV[1] order id   ARGV[2] ended-marker TTL, ms
-- Returns {1, qty} when a hold ended, {0, 0} when there was none.
local qty = redis.call('HGET', KEYS[2], 'qty')
if not qty then
  return {0, 0}
end
qty = tonumber(qty)
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
-- Counters that vanished (Redis lost data) are not recreated from a hold:
-- partial counters would look stocked. Reconciliation from Postgres rebuilds them.
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HINCRBY', KEYS[1], 'atp', qty)
  redis.call('HINCRBY', KEYS[1], 'held', -qty)
end
redis.call('SET', KEYS[4], 'released', 'PX', ARGV[2])
return {1, qty}
