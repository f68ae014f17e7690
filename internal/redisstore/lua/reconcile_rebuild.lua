-- reconcile_rebuild.lua: rebuild the counters of one SKU that Redis lost (flushed, restarted
-- empty), in one step, so the api never sees a half-built SKU: until this script runs the SKU has
-- no counters and the api refuses its orders with 503 ("never sell blind"); after it, ATP is final.
-- The holds Redis lost are given back, with the same order id and deadline, WITHOUT refusing:
-- they were promised before the loss, and ATP may go negative (the Postgres guard decides).
-- KEYS[1] inv hash   KEYS[2] holds zset   KEYS[3] expiry outbox hash
-- KEYS[4] stock sequence marks (warehouse id -> seq of the last stock event counted in atp)
-- (one {SKU} slot)
-- ARGV[1] truth (on_hand - allocated)   ARGV[2] hold key prefix   ARGV[3] ended key prefix
-- ARGV[4] ended-marker TTL, ms   ARGV[5] now, unix ms
-- ARGV[6] m, then m pairs: warehouse id, last seq applied in Postgres (the truth includes these
--         events, so a delta of any of them still on its way must not count again)
-- then triples: order id, qty, deadline (unix ms) of every undecided order of this SKU
-- A hold that exists, or that already ended (an ended marker), is left alone. A hold whose
-- deadline has passed is not re-created: it is ended as expired (marker, outbox entry for its
-- hold.expired event), exactly as the reaper would have done, so a late confirmation takes its
-- units back once.
-- Returns {code, atp, held, holds created, holds ended as expired}; code 0: the SKU has counters,
-- nothing was done (rebuilt by someone else, or never lost).
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, 0, 0, 0, 0}
end
local now = tonumber(ARGV[5])
local marks = tonumber(ARGV[6])
for i = 7, 6 + 2 * marks, 2 do
  local mark = tonumber(redis.call('HGET', KEYS[4], ARGV[i]) or '0')
  if tonumber(ARGV[i + 1]) > mark then
    redis.call('HSET', KEYS[4], ARGV[i], ARGV[i + 1])
  end
end
local created, expired = 0, 0
for i = 7 + 2 * marks, #ARGV, 3 do
  local order, deadline = ARGV[i], tonumber(ARGV[i + 2])
  local hold = ARGV[2] .. order
  local ended = ARGV[3] .. order
  if redis.call('EXISTS', hold) == 0 and redis.call('EXISTS', ended) == 0 then
    if deadline <= now then
      redis.call('SET', ended, 'expired', 'PX', ARGV[4])
      redis.call('HSET', KEYS[3], order, ARGV[i + 1] .. ',' .. ARGV[i + 2] .. ',' .. ARGV[5])
      redis.call('PEXPIRE', KEYS[3], ARGV[4])
      expired = expired + 1
    else
      redis.call('HSET', hold, 'qty', ARGV[i + 1], 'deadline', ARGV[i + 2])
      redis.call('ZADD', KEYS[2], ARGV[i + 2], order)
      created = created + 1
    end
  end
end
local live = 0
for _, order in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local qty = redis.call('HGET', ARGV[2] .. order, 'qty')
  if qty then
    live = live + tonumber(qty)
  else
    redis.call('ZREM', KEYS[2], order)
  end
end
local atp = tonumber(ARGV[1]) - live
redis.call('HSET', KEYS[1], 'atp', atp, 'held', live)
return {1, atp, live, created, expired}
