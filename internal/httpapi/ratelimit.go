package httpapi

import (
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
)

// rateLimit applies the per-key limit kept in Redis (GCRA, one key per API key, so it holds
// across api instances and on Redis Cluster). If Redis cannot answer, the request passes: the
// limit protects capacity, and the order path fails on its own when Redis is down.
//
// A refusal is remembered in process until the time Redis gave for the key's next request (see
// denials), and requests of that key until then are refused from memory: a storefront flooding
// the api costs Redis one round trip per conforming request, not one per request, and its
// refusals are answered in microseconds.
//
// Every answer of a limited route carries the IETF RateLimit-Policy and RateLimit fields
// (draft-ietf-httpapi-ratelimit-headers), refusals Retry-After too (rateHeaders).
func rateLimit(cfg Config, store Store, m *metrics, log *slog.Logger) echo.MiddlewareFunc {
	denied := newDenials(time.Now)
	fromRedis, fromMemory := m.limited.WithLabelValues("redis"), m.limited.WithLabelValues("memory")
	policy := ratePolicy{name: "default", quota: cfg.RateBurst, rate: cfg.RateLimit}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if cfg.RateLimit <= 0 {
				return next(c)
			}
			id := keyOf(c).ID
			if wait, ok := denied.refused(id); ok {
				fromMemory.Inc()
				policy.set(c, 0, wait)
				return rateLimited(wait)
			}
			res, err := store.Allow(c.Request().Context(), id, cfg.RateLimit, cfg.RateBurst)
			if err != nil {
				log.Warn("rate limit check failed; letting the request through", "err", err)
				return next(c)
			}
			if !res.Allowed {
				denied.refuse(id, res.RetryAfter)
				fromRedis.Inc()
				policy.set(c, 0, res.RetryAfter)
				return rateLimited(res.RetryAfter)
			}
			policy.set(c, res.Remaining, res.ResetAfter)
			return next(c)
		}
	}
}

func rateLimited(retry time.Duration) error {
	p := newProblem(http.StatusTooManyRequests, "rate-limited", "Too many requests", "This API key is over its request rate; retry after the number of seconds in Retry-After.")
	p.retryAfter = max(retry, time.Second)
	return p
}

// ratePolicy is one quota policy as the RateLimit header fields describe it
// (draft-ietf-httpapi-ratelimit-headers, structured fields): a GCRA bucket of quota requests
// refilled at rate per second is a quota of q = quota units in a window of w = quota/rate
// seconds (rounded up), the time an empty bucket takes to fill.
type ratePolicy struct {
	name  string
	quota int
	rate  int
}

// set writes RateLimit-Policy and RateLimit: r is what the bucket allows right now, t the
// seconds until it is full again or, when r is 0, until the next request is allowed (the
// Retry-After of a refusal).
func (p ratePolicy) set(c echo.Context, remaining int, reset time.Duration) {
	h := c.Response().Header()
	window := (p.quota + p.rate - 1) / p.rate
	h.Set("RateLimit-Policy", fmt.Sprintf("%q;q=%d;w=%d", p.name, p.quota, max(window, 1)))
	h.Set("RateLimit", fmt.Sprintf("%q;r=%d;t=%d", p.name, remaining, ceilSeconds(reset)))
}

// ceilSeconds rounds d up to whole seconds, as Retry-After does.
func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

// maxDenials bounds the denial memory; past it, lapsed entries are swept on the next refusal.
// Only keys refused within the last wait are live, so this is far above any real count.
const maxDenials = 4096

// denials remembers, per API key, until when the shared limit refuses it. GCRA's retry-after is
// the earliest time at which the key's next request conforms, and requests through other api
// instances can only push that time later, never earlier; so refusing from memory until then
// never refuses a request Redis would have let through. It only spares the round trip.
type denials struct {
	now   func() time.Time
	mu    sync.Mutex
	until map[string]time.Time
}

func newDenials(now func() time.Time) *denials {
	return &denials{now: now, until: make(map[string]time.Time)}
}

// refused reports whether key is still within a wait Redis gave it, and how much of it is left.
func (d *denials) refused(key string) (time.Duration, bool) {
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	until, ok := d.until[key]
	if !ok {
		return 0, false
	}
	if !now.Before(until) {
		delete(d.until, key)
		return 0, false
	}
	return until.Sub(now), true
}

// refuse records that Redis refused key and allows its next request after wait.
func (d *denials) refuse(key string, wait time.Duration) {
	if wait <= 0 {
		return
	}
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.until) >= maxDenials {
		for k, until := range d.until {
			if !now.Before(until) {
				delete(d.until, k)
			}
		}
	}
	if len(d.until) < maxDenials {
		d.until[key] = now.Add(wait)
	}
}
