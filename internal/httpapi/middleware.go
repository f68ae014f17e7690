package httpapi

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/orderpipe/orderpipe/internal/auth"
)

type metrics struct {
	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	limited      *prometheus.CounterVec
	authFailures *prometheus.CounterVec
	soldOutGate  prometheus.Counter
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
		authFailures: f.NewCounterVec(prometheus.CounterOpts{
			Name: "orderpipe_http_auth_failures_total",
			Help: "Requests that failed authentication (no, malformed, unknown or revoked API key), by outcome: unauthorized (401), or 429 because the client address is over its failure limit, by where that came from: limited_redis (the shared limit said no) or limited_memory (within the wait Redis gave the address).",
		}, []string{"outcome"}),
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

// bearerToken returns the credentials of an "Authorization: Bearer <token>" header. The scheme
// is case-insensitive (RFC 9110 section 11.1) and may be followed by more than one space.
func bearerToken(h string) (string, bool) {
	scheme, rest, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token := strings.TrimSpace(rest)
	return token, token != ""
}

// decodePathParams percent-decodes every path parameter exactly once, for every route. Echo's
// router matches the raw path when the request carries an escape Go would not have written
// (URL.RawPath is set: %3D, %2F, %33...) and then hands the parameters over still encoded; for
// any other path it matches the decoded path, and they arrive decoded. After this middleware
// they are the decoded value in both cases, and handlers never unescape.
func decodePathParams() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if c.Request().URL.RawPath == "" {
				return next(c)
			}
			names, raw := c.ParamNames(), c.ParamValues()
			decoded := make([]string, len(raw))
			for i, v := range raw {
				d, err := url.PathUnescape(v)
				if err != nil {
					name := "?"
					if i < len(names) {
						name = names[i]
					}
					return badRequest("The path parameter " + name + " is not valid percent-encoding.")
				}
				decoded[i] = d
			}
			c.SetParamValues(decoded...)
			return next(c)
		}
	}
}
