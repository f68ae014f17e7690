-- idem_begin.lua: claim an idempotency key for one attempt.
-- KEYS[1] idem hash: h (body hash), id, st (inflight|done|open), lease (unix ms),
--                    status, ct, body (the stored answer once done)
-- ARGV[1] body hash   ARGV[2] new id   ARGV[3] now (unix ms)
-- ARGV[4] lease (ms)  ARGV[5] ttl (ms)
-- Returns {outcome, id[, status, content type, body]}, outcome one of
-- new | mismatch | replay | inflight.
local now = tonumber(ARGV[3])
local rec = redis.call('HMGET', KEYS[1], 'h', 'id', 'st', 'lease', 'status', 'ct', 'body')
if not rec[1] then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'h', ARGV[1], 'id', ARGV[2], 'st', 'inflight',
    'lease', now + tonumber(ARGV[4]))
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  return {'new', ARGV[2]}
end
if rec[1] ~= ARGV[1] then
  return {'mismatch', rec[2] or ''}
end
if rec[3] == 'done' then
  return {'replay', rec[2] or '', rec[5] or '0', rec[6] or '', rec[7] or ''}
end
if rec[3] == 'inflight' and rec[2] == ARGV[2] then
  -- This attempt's own claim, delivered twice (the client resent the command after losing
  -- the reply): ARGV[2] is new per attempt, so the record is still ours. The lease stands.
  return {'new', ARGV[2]}
end
if rec[3] == 'inflight' and (tonumber(rec[4]) or 0) > now then
  return {'inflight', rec[2] or ''}
end
-- An earlier attempt crashed (lease expired) or gave up (open): take over with
-- the stored id, so the retry keeps the same order id. The TTL is not extended.
redis.call('HSET', KEYS[1], 'st', 'inflight', 'lease', now + tonumber(ARGV[4]))
return {'new', rec[2] or ''}
