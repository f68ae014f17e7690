-- release.lua: end one hold by returning its units to atp (payment declined, order refused or
-- cancelled), and its promotional units to the promotion's stock cap and the customer's
-- allowance. Idempotent: a missing hold changes nothing.
-- KEYS[1] inv hash   KEYS[2] hold hash   KEYS[3] holds zset   KEYS[4] ended marker  (one {SKU} slot)
-- ARGV[1] order id   ARGV[2] ended-marker TTL, ms
-- ARGV[3] (optional) promotion counter key prefix of this SKU (up to and including "}:"); the
--         promotion id stored in the hold completes the key, in the same {SKU} slot
-- Returns {1, qty} when a hold ended, {0, 0} when there was none.
local h = redis.call('HMGET', KEYS[2], 'qty', 'promo', 'pqty', 'cust')
local qty = h[1]
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
if ARGV[3] and h[2] and tonumber(h[3] or '0') > 0 then
  local pkey = ARGV[3] .. h[2]
  if redis.call('EXISTS', pkey) == 1 then
    redis.call('HINCRBY', pkey, 'sold', -tonumber(h[3]))
    redis.call('HINCRBY', pkey, 'c:' .. h[4], -tonumber(h[3]))
  end
end
redis.call('SET', KEYS[4], 'released', 'PX', ARGV[2])
return {1, qty}
