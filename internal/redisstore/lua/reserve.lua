-- reserve.lua: hold qty units of one SKU for one order.
-- All keys share the {SKU} hash tag, so the script runs on one cluster slot.
-- KEYS[1] inv hash (atp, held)   KEYS[2] hold hash (qty, deadline)   KEYS[3] holds zset
-- KEYS[4] ended marker of this order's hold (a new hold clears it: a retry of a refused order)
-- ARGV[1] order id   ARGV[2] qty (> 0)   ARGV[3] hold deadline, unix ms
-- Returns {code, n}:
--   {0, atp after}   reserved now
--   {1, held qty}    the order already holds this SKU (idempotent retry; nothing taken)
--   {2, 0}           SKU not stocked (no inv counters: never sell blind)
--   {3, atp}         short: atp < qty, nothing taken
local qty = tonumber(ARGV[2])
if not qty or qty <= 0 then
  return redis.error_reply('ERR reserve: qty must be a positive integer')
end
local held = redis.call('HGET', KEYS[2], 'qty')
if held then
  return {1, tonumber(held)}
end
local atp = redis.call('HGET', KEYS[1], 'atp')
if not atp then
  return {2, 0}
end
atp = tonumber(atp)
if atp < qty then
  return {3, atp}
end
redis.call('HINCRBY', KEYS[1], 'atp', -qty)
redis.call('HINCRBY', KEYS[1], 'held', qty)
redis.call('HSET', KEYS[2], 'qty', qty, 'deadline', ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('DEL', KEYS[4])
return {0, atp - qty}
