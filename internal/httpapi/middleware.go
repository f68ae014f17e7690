package httpapi

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/orderpipe/orderpipe/internal/auth"
)

type metrics struct {
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	limited     *prometheus.CounterVec
	soldOutGate prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "orderpipe_http_requests_total",
			Help: "HTTP requests by method, route template and status code.",
		}, []string{"method", "route", "code"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "orderpipe_http_request_duration_seconds",
			Help:    "HTTP request latency by method and route template.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"method", "route"}),
		limited: f.NewCounterVec(prometheus.CounterOpts{
			Name: "orderpipe_http_rate_limited_total",
			Help: "Requests refused with 429 by the per-key rate limit, by where the refusal came from: redis (the shared limit said no) or memory (within the wait Redis gave for that key).",
		}, []string{"source"}),
		soldOutGate: f.NewCounter(prometheus.CounterOpts{
			Name: "orderpipe_http_soldout_gate_total",
			Help: "Orders refused with 409 by the sold-out gate before the idempotency protocol (SOLDOUT_GATE=before-idempotency).",
		}),
	}
}

// zero makes the 500 series of every route exist at 0 from the start: OrderpipeInternalErrors
// takes rate() of it, which sees nothing of a series until its second sample, so the first
// failing request on a route would otherwise go unnoticed.
func (m *metrics) zero(routes []*echo.Route) {
	for _, r := range routes {
		if r.Method == echo.RouteNotFound || strings.HasPrefix(r.Method, "echo_") {
			continue
		}
		m.requests.WithLabelValues(r.Method, r.Path, strconv.Itoa(http.StatusInternalServerError))
	}
}

// middleware records rate, errors and latency per route template (bounded labels: unmatched
// paths share one label).
func (m *metrics) middleware() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			if err != nil {
				c.Error(err)
			}
			route := c.Path()
			if route == "" || c.Get(unmatchedKey) != nil {
				route = "unmatched"
			}
			method := c.Request().Method
			m.requests.WithLabelValues(method, route, strconv.Itoa(c.Response().Status)).Inc()
			m.duration.WithLabelValues(method, route).Observe(time.Since(start).Seconds())
			return nil
		}
	}
}

const (
	keyCtxKey      = "orderpipe.key"
	orderIDCtxKey  = "orderpipe.order_id"
	bodyCtxKey     = "orderpipe.body"
	snapshotCtxKey = "orderpipe.snapshot"
	unmatchedKey   = "orderpipe.unmatched"
)

func keyOf(c echo.Context) auth.Key {
	k, _ := c.Get(keyCtxKey).(auth.Key)
	return k
}

func orderIDOf(c echo.Context) string {
	id, _ := c.Get(orderIDCtxKey).(string)
	return id
}

// requireKey authenticates the bearer API key from the in-process cache and checks its scope:
// 401 without a valid key, 403 without the scope.
func requireKey(keys *auth.Keys, scope string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			h := c.Request().Header.Get(echo.HeaderAuthorization)
			token, ok := strings.CutPrefix(h, "Bearer ")
			if !ok || token == "" {
				c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="orderpipe"`)
				return newProblem(http.StatusUnauthorized, "unauthorized", "Unauthorized", "Send an API key as 'Authorization: Bearer op_...'.")
			}
			key, err := keys.Authenticate(strings.TrimSpace(token))
			if err != nil {
				c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="orderpipe", error="invalid_token"`)
				return newProblem(http.StatusUnauthorized, "unauthorized", "Unauthorized", "The API key is malformed, unknown or revoked.")
			}
			if !key.Has(scope) {
				return newProblem(http.StatusForbidden, "forbidden", "Forbidden", "The API key lacks the scope "+scope+".")
			}
			c.Set(keyCtxKey, key)
			return next(c)
		}
	}
}
