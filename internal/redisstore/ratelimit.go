package redisstore

import (
	"context"
	"fmt"
	"time"

	"github.com/go-redis/redis_rate/v10"
)

// Allow takes one request from the GCRA bucket of scope (for example a
// client key or an IP), refilled at ratePerSec with room for burst requests.
// When refused, retryAfter says when the next request will be allowed. The
// state lives in one key, so it works on Redis Cluster.
func (s *Store) Allow(ctx context.Context, scope string, ratePerSec, burst int) (bool, time.Duration, error) {
	if ratePerSec <= 0 || burst <= 0 {
		return false, 0, fmt.Errorf("rate limit %s: rate %d, burst %d: want > 0", scope, ratePerSec, burst)
	}
	limit := redis_rate.Limit{Rate: ratePerSec, Burst: burst, Period: time.Second}
	res, err := s.limiter.Allow(ctx, s.rateKey(scope), limit)
	if err != nil {
		return false, 0, fmt.Errorf("rate limit %s: %w", scope, classify(err))
	}
	if res.Allowed > 0 {
		return true, 0, nil
	}
	return false, res.RetryAfter, nil
}
