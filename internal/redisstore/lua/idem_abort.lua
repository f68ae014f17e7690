-- idem_abort.lua: give the key back after a transient failure so the client
-- may retry; the id is kept so the retry reuses it. Keeps the TTL.
-- KEYS[1] idem hash
-- Returns 1 when reopened, 0 when the record was gone or already done.
local st = redis.call('HGET', KEYS[1], 'st')
if not st or st == 'done' then
  return 0
end
redis.call('HSET', KEYS[1], 'st', 'open')
redis.call('HDEL', KEYS[1], 'lease')
return 1
