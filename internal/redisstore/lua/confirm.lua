-- confirm.lua: end one hold because its units are now allocated in Postgres.
-- KEYS[1] inv hash   KEYS[2] hold hash   KEYS[3] holds zset   KEYS[4] ended marker  (one {SKU} slot)
-- ARGV[1] order id   ARGV[2] the order's qty of this SKU   ARGV[3] ended-marker TTL, ms
-- KEYS[5] (optional) the counters of the promotion the order's line was sold under, with
--         ARGV[4] its promotional units, ARGV[5] the customer id and ARGV[6] the promotion id:
--         a late confirmation counts them again (the expiry gave them back), like the units it
--         takes out of atp
-- The promotional units of a live hold were counted when it was made and stay counted: a
-- confirmation consumes them.
-- The ended marker it sets is 'confirmed:<pqty>:<promo>' when the hold had promotional units
-- (pqty > 0 of promotion promo: from the live hold's fields, or for a late confirmation from
-- ARGV[4] and ARGV[6]), else 'confirmed'. reserve.lua reads it: a retry of the confirmed order
-- (same order id) takes nothing again and reports these promotional units, as its first answer
-- did. The count comes first and the promotion id last, so an id containing ':' still parses. A
-- late confirmation by a caller that passes no ARGV[6] records plain 'confirmed' (the retry then
-- reports 0 promotional units; it still takes nothing).
-- Returns {code, qty}:
--   {1, qty}  the hold ended: held goes down, atp stays (the units moved to allocated)
--   {2, qty}  late confirmation: the hold had expired and returned its units to atp, then the
--             Postgres guard allocated them anyway; take them back out of atp (it may go
--             negative: those units were promised twice and the guard will refuse the other order)
--   {0, 0}    nothing to do: already confirmed or released, or Redis lost the hold
--             (reconciliation from Postgres rebuilds the counters)
-- The ended marker makes every outcome happen once, however often the worker retries.
local h = redis.call('HMGET', KEYS[2], 'qty', 'promo', 'pqty')
local qty = h[1]
if qty then
  qty = tonumber(qty)
  redis.call('DEL', KEYS[2])
  redis.call('ZREM', KEYS[3], ARGV[1])
  if redis.call('EXISTS', KEYS[1]) == 1 then
    redis.call('HINCRBY', KEYS[1], 'held', -qty)
  end
  local marker = 'confirmed'
  if h[2] and tonumber(h[3] or '0') > 0 then
    marker = 'confirmed:' .. h[3] .. ':' .. h[2]
  end
  redis.call('SET', KEYS[4], marker, 'PX', ARGV[3])
  return {1, qty}
end
if redis.call('GET', KEYS[4]) == 'expired' then
  local want = tonumber(ARGV[2])
  if redis.call('EXISTS', KEYS[1]) == 1 then
    redis.call('HINCRBY', KEYS[1], 'atp', -want)
  end
  local marker = 'confirmed'
  if KEYS[5] and tonumber(ARGV[4]) > 0 then
    if redis.call('EXISTS', KEYS[5]) == 1 then
      redis.call('HINCRBY', KEYS[5], 'sold', tonumber(ARGV[4]))
      redis.call('HINCRBY', KEYS[5], 'c:' .. ARGV[5], tonumber(ARGV[4]))
    end
    if ARGV[6] and ARGV[6] ~= '' then
      marker = 'confirmed:' .. ARGV[4] .. ':' .. ARGV[6]
    end
  end
  redis.call('SET', KEYS[4], marker, 'PX', ARGV[3])
  return {2, want}
end
return {0, 0}
