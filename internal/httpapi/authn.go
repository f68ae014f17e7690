package httpapi

import (
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderpipe/orderpipe/internal/auth"
)

// authenticator checks the bearer API key of protected routes against the in-process key cache
// (no Postgres query per request) and rate-limits failed authentication per client address.
//
// Failures (no key, a malformed, unknown or revoked one) take one request from the address's
// GCRA bucket in Redis (AUTH_FAILURE_RATE_PER_SECOND, AUTH_FAILURE_BURST; shared by every api
// instance); over it, a failure is answered 429 too-many-auth-failures instead of 401, and the
// refusal is remembered in process until the wait Redis gave ends (denials), so a flood of bad
// keys costs neither Postgres nor, past the first refusal, Redis. A valid key is never refused
// by this limit, even from an address that is over it: one broken client behind a shared
// address (a NAT, a proxy) must not lock out the others, and guessing a key is hopeless anyway
// (256-bit secrets); the key's own limit applies to it.
type authenticator struct {
	keys   *auth.Keys
	store  Store
	rate   int
	policy ratePolicy
	denied *denials
	log    *slog.Logger

	unauthorized, fromRedis, fromMemory prometheus.Counter
}

func newAuthenticator(cfg Config, keys *auth.Keys, store Store, m *metrics, log *slog.Logger) *authenticator {
	return &authenticator{
		keys: keys, store: store, rate: cfg.AuthFailureRate, log: log,
		policy:       ratePolicy{name: "auth-failures", quota: cfg.AuthFailureBurst, rate: cfg.AuthFailureRate},
		denied:       newDenials(time.Now),
		unauthorized: m.authFailures.WithLabelValues("unauthorized"),
		fromRedis:    m.authFailures.WithLabelValues("limited_redis"),
		fromMemory:   m.authFailures.WithLabelValues("limited_memory"),
	}
}

// require authenticates the key and checks its scope: 401 without a valid key (429 when the
// address is over its failure limit), 403 without the scope (not a failed authentication).
func (a *authenticator) require(scope string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			token, ok := bearerToken(c.Request().Header.Get(echo.HeaderAuthorization))
			if !ok {
				c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="orderpipe"`)
				return a.failed(c, "Send an API key as 'Authorization: Bearer op_...'.")
			}
			key, err := a.keys.Authenticate(token)
			if err != nil {
				c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="orderpipe", error="invalid_token"`)
				return a.failed(c, "The API key is malformed, unknown or revoked.")
			}
			if !key.Has(scope) {
				return newProblem(http.StatusForbidden, "forbidden", "Forbidden", "The API key lacks the scope "+scope+".")
			}
			c.Set(keyCtxKey, key)
			return next(c)
		}
	}
}

// failed answers a failed authentication: 401, or 429 when the client's address is over its
// failure limit. If Redis cannot answer, it is 401 (the limit protects capacity; it is no
// reason to refuse a client that might fix its key).
func (a *authenticator) failed(c echo.Context, detail string) error {
	unauthorized := newProblem(http.StatusUnauthorized, "unauthorized", "Unauthorized", detail)
	if a.rate <= 0 {
		a.unauthorized.Inc()
		return unauthorized
	}
	addr := clientAddr(c)
	if wait, ok := a.denied.refused(addr); ok {
		a.fromMemory.Inc()
		return a.limited(c, wait)
	}
	res, err := a.store.Allow(c.Request().Context(), "authfail:"+addr, a.policy.rate, a.policy.quota)
	if err != nil {
		a.log.Debug("auth failure limit check failed; answering 401", "err", err)
		a.unauthorized.Inc()
		return unauthorized
	}
	if !res.Allowed {
		a.denied.refuse(addr, res.RetryAfter)
		a.fromRedis.Inc()
		return a.limited(c, res.RetryAfter)
	}
	a.unauthorized.Inc()
	a.policy.set(c, res.Remaining, res.ResetAfter)
	return unauthorized
}

func (a *authenticator) limited(c echo.Context, wait time.Duration) error {
	wait = max(wait, time.Second)
	a.policy.set(c, 0, wait)
	p := newProblem(http.StatusTooManyRequests, "too-many-auth-failures", "Too many failed authentications",
		"Too many requests from this address failed authentication; send a valid API key, or retry after the number of seconds in Retry-After.")
	p.retryAfter = wait
	return p
}

// clientAddr is the address failed authentications are counted by: the client IP (Echo's
// IPExtractor: the TCP peer, or the X-Forwarded-For hop before API_TRUSTED_PROXIES), and for
// IPv6 its /64, since one host commonly holds a whole /64.
func clientAddr(c echo.Context) string {
	ip := net.ParseIP(c.RealIP())
	if ip == nil {
		return c.RealIP()
	}
	if ip.To4() == nil {
		return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
	}
	return ip.String()
}

// ipExtractor finds the client IP: the TCP peer, unless it is one of the trusted proxies (load
// balancers), whose X-Forwarded-For is then believed up to the first untrusted hop. Nothing is
// trusted by default, so a client cannot choose its own address with a header.
func ipExtractor(trusted []*net.IPNet) echo.IPExtractor {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, n := range trusted {
		opts = append(opts, echo.TrustIPRange(n))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}
