-- expire.lua: return the units of every hold of one SKU whose deadline has passed (the buyer
-- did not pay in time), at most ARGV[2] of them. Each expired hold gets the ended marker
-- "expired", so a late confirmation takes its units back exactly once (confirm.lua) and a
-- second reaper finds nothing to do. All keys share the {SKU} hash tag.
-- KEYS[1] inv hash   KEYS[2] holds zset
-- KEYS[3] (optional) the expiry outbox hash of the SKU: each expired hold is recorded there as
--         order id -> "qty,deadline ms,expired at ms" until the reaper has published its
--         hold.expired event (so a crash between this script and the publish loses no event)
-- ARGV[1] now, unix ms   ARGV[2] limit   ARGV[3] hold key prefix (up to and including "}:")
-- ARGV[4] ended key prefix (up to and including "}:")   ARGV[5] ended-marker TTL, ms
-- ARGV[6] (optional) promotion counter key prefix (up to and including "}:"): the promotional
--         units of an expired hold go back to the promotion's cap and the customer's allowance
-- Returns a flat list {order id, qty, order id, qty, ...} of the holds expired now.
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
local stocked = redis.call('EXISTS', KEYS[1]) == 1
for _, order in ipairs(due) do
  local hold = ARGV[3] .. order
  local h = redis.call('HMGET', hold, 'qty', 'deadline', 'promo', 'pqty', 'cust')
  local qty = h[1]
  redis.call('ZREM', KEYS[2], order)
  if qty then
    qty = tonumber(qty)
    if KEYS[3] then
      redis.call('HSET', KEYS[3], order, qty .. ',' .. (h[2] or ARGV[1]) .. ',' .. ARGV[1])
      redis.call('PEXPIRE', KEYS[3], ARGV[5])
    end
    redis.call('DEL', hold)
    if stocked then
      redis.call('HINCRBY', KEYS[1], 'atp', qty)
      redis.call('HINCRBY', KEYS[1], 'held', -qty)
    end
    if ARGV[6] and h[3] and tonumber(h[4] or '0') > 0 then
      local pkey = ARGV[6] .. h[3]
      if redis.call('EXISTS', pkey) == 1 then
        redis.call('HINCRBY', pkey, 'sold', -tonumber(h[4]))
        redis.call('HINCRBY', pkey, 'c:' .. h[5], -tonumber(h[4]))
      end
    end
    redis.call('SET', ARGV[4] .. order, 'expired', 'PX', ARGV[5])
    out[#out + 1] = order
    out[#out + 1] = qty
  end
end
return out
