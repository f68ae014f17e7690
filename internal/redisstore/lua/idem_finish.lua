-- idem_finish.lua: store the final answer of an attempt. Keeps the TTL; a
-- record that already expired is not recreated.
-- KEYS[1] idem hash   ARGV[1] status   ARGV[2] content type   ARGV[3] body
-- Returns 1 when stored, 0 when the record was gone.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'st', 'done', 'status', ARGV[1], 'ct', ARGV[2], 'body', ARGV[3])
redis.call('HDEL', KEYS[1], 'lease')
return 1
