-- reserve.lua: hold qty units of one SKU for one order, and, when a promotion prices the SKU,
-- count the units sold at the promotional price against the promotion's stock cap and the
-- customer's allowance, in the same atomic step.
-- All keys share the {SKU} hash tag, so the script runs on one cluster slot.
-- KEYS[1] inv hash (atp, held)   KEYS[2] hold hash (qty, deadline[, promo, pqty, cust])
-- KEYS[3] holds zset   KEYS[4] ended marker of this order's hold: 'confirmed' or
--         'confirmed:<pqty>:<promo>' (confirm.lua), 'released' (release.lua), 'expired'
--         (expire.lua, reconcile_rebuild.lua). A confirmed hold is never taken again: a retry of an
--         order answered 202 whose answer could not be stored runs again with the same order id,
--         possibly after order-worker confirmed it, and its units are already sold. After
--         'released' (order refused or cancelled, or answered 503) or 'expired' (hold past its deadline)
--         the order may hold again, and the new hold clears the marker (a later confirmation
--         then ends the new hold normally).
-- KEYS[5] (only with a promotion) the promotion's counters for this SKU: hash
--         sold -> promotional units held or sold, c:<customer> -> that customer's units
-- ARGV[1] order id   ARGV[2] qty (> 0)   ARGV[3] hold deadline, unix ms
-- with a promotion: ARGV[4] promotion id   ARGV[5] stock cap (0: none)
--   ARGV[6] per-customer limit (0: none)   ARGV[7] over-cap rule: base or refuse
--   ARGV[8] customer id   ARGV[9] when the counters may go, unix ms (the promotion's end plus
--   the ended-marker TTL)
-- Returns {code, n, promotional units}:
--   {0, atp after, p}  reserved now; p of the qty units are promotional (p <= qty)
--   {1, held qty, p}   the order already holds this SKU (idempotent retry; nothing taken); p are
--                      the promotional units of that hold when it was made under the same
--                      promotion, else 0
--   {1, qty, p}        the order's hold on this SKU was confirmed (ended marker 'confirmed...'):
--                      nothing taken, no counter touched, the marker stays. qty is the qty asked;
--                      p is the promotional units the marker records when the confirmed hold was
--                      made under the same promotion, else 0
--   {2, 0, 0}          SKU not stocked (no inv counters: never sell blind)
--   {3, atp, 0}        short: atp < qty, nothing taken
--   {4, p, 0}          promotion limit, over-cap rule refuse: only p (< qty) units could be
--                      promotional (stock cap or the customer's allowance), nothing taken
local qty = tonumber(ARGV[2])
if not qty or qty <= 0 then
  return redis.error_reply('ERR reserve: qty must be a positive integer')
end
local held = redis.call('HMGET', KEYS[2], 'qty', 'promo', 'pqty')
if held[1] then
  local p = 0
  if KEYS[5] and held[2] == ARGV[4] then
    p = tonumber(held[3] or '0')
  end
  return {1, tonumber(held[1]), p}
end
local ended = redis.call('GET', KEYS[4])
if ended and (ended == 'confirmed' or string.sub(ended, 1, 10) == 'confirmed:') then
  local p = 0
  if KEYS[5] then
    local pqty, promo = string.match(ended, '^confirmed:(%d+):(.+)$')
    if promo == ARGV[4] then
      p = tonumber(pqty)
    end
  end
  return {1, qty, p}
end
local atp = redis.call('HGET', KEYS[1], 'atp')
if not atp then
  return {2, 0, 0}
end
atp = tonumber(atp)
if atp < qty then
  return {3, atp, 0}
end
local p = 0
if KEYS[5] then
  p = qty
  local cap, limit = tonumber(ARGV[5]), tonumber(ARGV[6])
  local ckey = 'c:' .. ARGV[8]
  if cap > 0 then
    local sold = tonumber(redis.call('HGET', KEYS[5], 'sold') or '0')
    p = math.min(p, math.max(cap - sold, 0))
  end
  if limit > 0 then
    local mine = tonumber(redis.call('HGET', KEYS[5], ckey) or '0')
    p = math.min(p, math.max(limit - mine, 0))
  end
  if p < qty and ARGV[7] == 'refuse' then
    return {4, p, 0}
  end
  if p > 0 then
    redis.call('HINCRBY', KEYS[5], 'sold', p)
    redis.call('HINCRBY', KEYS[5], ckey, p)
    redis.call('PEXPIREAT', KEYS[5], ARGV[9])
  end
end
redis.call('HINCRBY', KEYS[1], 'atp', -qty)
redis.call('HINCRBY', KEYS[1], 'held', qty)
if p > 0 then
  redis.call('HSET', KEYS[2], 'qty', qty, 'deadline', ARGV[3], 'promo', ARGV[4], 'pqty', p, 'cust', ARGV[8])
else
  redis.call('HSET', KEYS[2], 'qty', qty, 'deadline', ARGV[3])
end
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('DEL', KEYS[4])
return {0, atp - qty, p}
