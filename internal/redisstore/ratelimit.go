package redisstore

import (
	"context"
	"fmt"
	"time"

	"github.com/go-redis/redis_rate/v10"
)

// RateResult is what Allow decided for one request.
type RateResult struct {
	Allowed bool
	// Remaining is how many more requests the bucket allows right now (0 when refused).
	Remaining int
	// RetryAfter is when the next request will be allowed (0 when allowed).
	RetryAfter time.Duration
	// ResetAfter is when the bucket is full again (burst requests allowed at once).
	ResetAfter time.Duration
}

// Allow takes one request from the GCRA bucket of scope (for example a
// client key or an IP), refilled at ratePerSec with room for burst requests.
// When refused, RetryAfter says when the next request will be allowed. The
// state lives in one key, so it works on Redis Cluster.
func (s *Store) Allow(ctx context.Context, scope string, ratePerSec, burst int) (RateResult, error) {
	if ratePerSec <= 0 || burst <= 0 {
		return RateResult{}, fmt.Errorf("rate limit %s: rate %d, burst %d: want > 0", scope, ratePerSec, burst)
	}
	limit := redis_rate.Limit{Rate: ratePerSec, Burst: burst, Period: time.Second}
	res, err := s.limiter.Allow(ctx, s.rateKey(scope), limit)
	if err != nil {
		return RateResult{}, fmt.Errorf("rate limit %s: %w", scope, classify(err))
	}
	r := RateResult{Allowed: res.Allowed > 0, Remaining: max(res.Remaining, 0), ResetAfter: max(res.ResetAfter, 0)}
	if !r.Allowed {
		r.RetryAfter = res.RetryAfter
	}
	return r, nil
}
