-- reconcile_rebuild.lua: rebuild the counters of one SKU that Redis lost (flushed, restarted
-- empty), in one step, so the api never sees a half-built SKU: until this script runs the SKU has
-- no counters and the api refuses its orders with 503 ("never sell blind"); after it, ATP is final.
-- The holds Redis lost are given back, with the same order id and deadline, WITHOUT refusing:
-- they were promised before the loss, and ATP may go negative (the Postgres guard decides).
-- The counters of the SKU's promotions (stock cap, per-customer limit) are rebuilt in the same
-- step: reserve.lua touches them only after it found the inv hash, so nothing counts against
-- them before this script ends.
-- KEYS[1] inv hash   KEYS[2] holds zset   KEYS[3] expiry outbox hash
-- KEYS[4] stock sequence marks (warehouse id -> seq of the last stock event counted in atp)
-- KEYS[5..4+k] the counters of the k promotions rebuilt (hash sold, c:<customer>), in the order
--         of their sections below
-- (one {SKU} slot)
-- ARGV[1] truth (on_hand - allocated)   ARGV[2] hold key prefix   ARGV[3] ended key prefix
-- ARGV[4] ended-marker TTL, ms   ARGV[5] now, unix ms
-- ARGV[6] m, then m pairs: warehouse id, last seq applied in Postgres (the truth includes these
--         events, so a delta of any of them still on its way must not count again)
-- then k promotion sections (k = #KEYS - 4), one per promotion key: promotion id, when the
--         counters may go (unix ms: the promotion's end plus the ended-marker TTL), c, then c
--         pairs: customer id, promotional units of that customer's orders Postgres decided and
--         did not cancel (sold starts as the sum of those units)
-- then sextuples: order id, qty, deadline (unix ms), promotion id ('' for none), promotional
--         units, customer id of every undecided order of this SKU
-- A hold that exists, or that already ended (an ended marker), is left alone. A hold whose
-- deadline has passed is not re-created: it is ended as expired (marker, outbox entry for its
-- hold.expired event), exactly as the reaper would have done, so a late confirmation takes its
-- units back once (and counts its promotional units again, confirm.lua). A re-created hold keeps
-- its promotional units (promo, pqty, cust), so release.lua and expire.lua give them back.
-- Each promotion's counters are the decided units plus the promotional units of every live hold
-- of the SKU (re-created or still there) made under it; holds under other promotions count
-- nothing here.
-- Returns {code, atp, held, holds created, holds ended as expired, promotions rebuilt}; code 0:
-- the SKU has counters, nothing was done (rebuilt by someone else, or never lost).
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, 0, 0, 0, 0, 0}
end
local now = tonumber(ARGV[5])
local marks = tonumber(ARGV[6])
for i = 7, 6 + 2 * marks, 2 do
  local mark = tonumber(redis.call('HGET', KEYS[4], ARGV[i]) or '0')
  if tonumber(ARGV[i + 1]) > mark then
    redis.call('HSET', KEYS[4], ARGV[i], ARGV[i + 1])
  end
end
local i = 7 + 2 * marks
local promos = {} -- promotion id -> its counters key
local until_ms = {} -- key index -> when the counters may go
for k = 5, #KEYS do
  local id, expire_at, c = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  i = i + 3
  local sold = 0
  redis.call('DEL', KEYS[k])
  for j = i, i + 2 * c - 1, 2 do
    local n = tonumber(ARGV[j + 1])
    if n > 0 then
      redis.call('HINCRBY', KEYS[k], 'c:' .. ARGV[j], n)
      sold = sold + n
    end
  end
  i = i + 2 * c
  -- sold is written even when 0: a present hash is what release, expire and a late confirm
  -- count against (they never create one).
  redis.call('HSET', KEYS[k], 'sold', sold)
  promos[id] = KEYS[k]
  until_ms[k] = expire_at
end
local created, expired = 0, 0
for h = i, #ARGV, 6 do
  local order, deadline = ARGV[h], tonumber(ARGV[h + 2])
  local hold = ARGV[2] .. order
  local ended = ARGV[3] .. order
  if redis.call('EXISTS', hold) == 0 and redis.call('EXISTS', ended) == 0 then
    if deadline <= now then
      redis.call('SET', ended, 'expired', 'PX', ARGV[4])
      redis.call('HSET', KEYS[3], order, ARGV[h + 1] .. ',' .. ARGV[h + 2] .. ',' .. ARGV[5])
      redis.call('PEXPIRE', KEYS[3], ARGV[4])
      expired = expired + 1
    else
      if ARGV[h + 3] ~= '' and tonumber(ARGV[h + 4]) > 0 then
        redis.call('HSET', hold, 'qty', ARGV[h + 1], 'deadline', ARGV[h + 2],
          'promo', ARGV[h + 3], 'pqty', ARGV[h + 4], 'cust', ARGV[h + 5])
      else
        redis.call('HSET', hold, 'qty', ARGV[h + 1], 'deadline', ARGV[h + 2])
      end
      redis.call('ZADD', KEYS[2], ARGV[h + 2], order)
      created = created + 1
    end
  end
end
local live = 0
for _, order in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local held = redis.call('HMGET', ARGV[2] .. order, 'qty', 'promo', 'pqty', 'cust')
  if held[1] then
    live = live + tonumber(held[1])
    local pkey = held[2] and promos[held[2]]
    local p = tonumber(held[3] or '0')
    if pkey and p > 0 then
      redis.call('HINCRBY', pkey, 'sold', p)
      redis.call('HINCRBY', pkey, 'c:' .. (held[4] or ''), p)
    end
  else
    redis.call('ZREM', KEYS[2], order)
  end
end
for k = 5, #KEYS do
  redis.call('PEXPIREAT', KEYS[k], until_ms[k])
end
local atp = tonumber(ARGV[1]) - live
redis.call('HSET', KEYS[1], 'atp', atp, 'held', live)
return {1, atp, live, created, expired, #KEYS - 4}
