-- stock_delta.lua: move one SKU's available-to-promise by what warehouse stock events changed in
-- Postgres (on_hand - allocated), each event exactly once, leaving held (holds in flight) alone.
-- KEYS[1] inv hash   KEYS[2] stock sequence hash: warehouse id -> seq of the last event of that
-- warehouse counted in atp   (one {SKU} slot)
-- ARGV triples, in the order Postgres applied them: warehouse id, seq, delta
-- An event counts when its seq is above its warehouse's mark (Postgres applies a warehouse's
-- events of a SKU in increasing seq, and so does the caller); the mark then moves to it. A
-- redelivered event (a crash between the Postgres commit and this script) finds its mark and
-- counts nothing. Without counters (Redis lost them) the marks still move but atp does not:
-- reconciliation rebuilds the counters from Postgres, which already holds these events.
-- Returns {counted, skipped, stocked (0 or 1), moved}.
local stocked = redis.call('EXISTS', KEYS[1]) == 1
local counted, skipped, moved = 0, 0, 0
for i = 1, #ARGV, 3 do
  local wh, seq, delta = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  local mark = tonumber(redis.call('HGET', KEYS[2], wh) or '0')
  if seq > mark then
    redis.call('HSET', KEYS[2], wh, ARGV[i + 1])
    counted = counted + 1
    moved = moved + delta
  else
    skipped = skipped + 1
  end
end
if not stocked then
  return {counted, skipped, 0, 0}
end
if moved ~= 0 then
  redis.call('HINCRBY', KEYS[1], 'atp', moved)
end
return {counted, skipped, 1, moved}
