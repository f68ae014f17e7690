package api

import (
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/orderpipe/orderpipe/internal/config"
)

// Config is every setting of the api process.
type Config struct {
	config.Postgres
	config.Redis
	config.Kafka
	config.Log
	Settings
}

// Settings are the api's own settings.
type Settings struct {
	Addr                  string        `env:"API_ADDR" envDefault:":8080" help:"listen address of the HTTP API (also serves /livez, /readyz, /metrics)"`
	MaxBodyBytes          int64         `env:"API_MAX_BODY_BYTES" envDefault:"65536" help:"largest accepted request body in bytes (413 above)"`
	RequestTimeout        time.Duration `env:"API_REQUEST_TIMEOUT" envDefault:"10s" help:"server read/write timeout per request"`
	ShutdownTimeout       time.Duration `env:"API_SHUTDOWN_TIMEOUT" envDefault:"20s" help:"how long shutdown waits for in-flight requests and the producer flush"`
	DrainDelay            time.Duration `env:"API_DRAIN_DELAY" envDefault:"5s" help:"after SIGTERM, how long /readyz answers 503 before the listener closes, so load balancers stop sending traffic"`
	MaxLines              int           `env:"ORDER_MAX_LINES" envDefault:"50" help:"most lines one order may have (422 above)"`
	MaxQuantity           int64         `env:"ORDER_MAX_QUANTITY" envDefault:"999" help:"most units of one line (422 above; at most 999)"`
	HoldTTL               time.Duration `env:"HOLD_TTL" envDefault:"15m" help:"how long stock stays held for an accepted, unpaid order (the hold deadline)"`
	PendingTTL            time.Duration `env:"PENDING_ORDER_TTL" envDefault:"168h" help:"how long the api's pending snapshot of an accepted order answers GET before the worker's row exists"`
	IdempotencyTTL        time.Duration `env:"IDEMPOTENCY_TTL" envDefault:"24h" help:"how long an Idempotency-Key and its answer are kept"`
	IdempotencyLease      time.Duration `env:"IDEMPOTENCY_LEASE" envDefault:"30s" help:"how long an in-flight request owns its Idempotency-Key before a retry may take over"`
	RateLimit             int           `env:"RATE_LIMIT_PER_SECOND" envDefault:"500" help:"requests per second per API key (0 disables)"`
	RateBurst             int           `env:"RATE_LIMIT_BURST" envDefault:"1000" help:"burst of requests per API key above the steady rate"`
	AuthFailureRate       int           `env:"AUTH_FAILURE_RATE_PER_SECOND" envDefault:"1" help:"failed authentications (no, malformed, unknown or revoked API key) per second per client address before they are answered 429 instead of 401 (0 disables; valid keys are never refused by it)"`
	AuthFailureBurst      int           `env:"AUTH_FAILURE_BURST" envDefault:"20" help:"burst of failed authentications per client address above AUTH_FAILURE_RATE_PER_SECOND"`
	TrustedProxies        []string      `env:"API_TRUSTED_PROXIES" envSeparator:"," help:"comma-separated CIDRs of load balancers whose X-Forwarded-For names the client address (empty: the TCP peer is the client; never trust what clients can reach directly)"`
	Currency              string        `env:"SHOP_CURRENCY" envDefault:"EUR" help:"ISO 4217 currency the shop sells in; catalog prices must use it"`
	ShippingStandardMinor int64         `env:"SHIPPING_STANDARD_MINOR" envDefault:"0" help:"shipping fee of standard orders, in minor units"`
	ShippingExpressMinor  int64         `env:"SHIPPING_EXPRESS_MINOR" envDefault:"990" help:"shipping fee of express orders, in minor units"`
	LowStock              int64         `env:"LOW_STOCK_THRESHOLD" envDefault:"5" help:"availability at or below this is reported as low_stock"`
	InventoryMaxAge       time.Duration `env:"INVENTORY_CACHE_MAX_AGE" envDefault:"2s" help:"Cache-Control max-age of GET /v1/inventory/{sku}"`
	CatalogRefresh        time.Duration `env:"CATALOG_REFRESH_INTERVAL" envDefault:"5s" help:"how often the in-process catalog, API key, trade account and warehouse caches reload from Postgres"`
	SoldOutGate           string        `env:"SOLDOUT_GATE" envDefault:"after-idempotency" help:"where orders for SKUs known to be sold out are refused: after-idempotency (a retried accepted order always gets its 202) or before-idempotency (no Redis call; a client retrying a lost 202 after the sell-out may be told 409)"`
	ProductsMaxAge        time.Duration `env:"PRODUCTS_CACHE_MAX_AGE" envDefault:"5s" help:"Cache-Control max-age of GET /v1/products and /v1/products/{sku} (never past the next price change in the answer)"`
	PromoSchedulerTick    time.Duration `env:"PROMO_SCHEDULER_INTERVAL" envDefault:"1s" help:"how often the promotion scheduler (active in one api at a time, Redis lock) republishes price timelines whose promotion windows ended"`
	PromoRepublish        time.Duration `env:"PROMO_REPUBLISH_INTERVAL" envDefault:"1m" help:"how often the active promotion scheduler recomputes every SKU's price timeline from Postgres (heals a lost publish)"`
	EventSource           string        `env:"EVENT_SOURCE" envDefault:"orderpipe/api" help:"CloudEvents source of the events this process produces"`
	RedisAutoPipeline     bool          `env:"REDIS_AUTOPIPELINE" envDefault:"true" help:"send the Redis commands of concurrent requests together on one connection (go-redis auto-pipelining, full duplex): one write and one read serve many orders under load; false gives every command its own pooled connection and round trip"`
}

// Validate checks the api settings.
func (s *Settings) Validate() error {
	var errs []error
	check := func(ok bool, name, format string, args ...any) {
		if !ok {
			errs = append(errs, config.Errorf(name, format, args...))
		}
	}
	check(s.Addr != "", "API_ADDR", "must not be empty")
	check(s.MaxBodyBytes >= 1024 && s.MaxBodyBytes <= 10<<20, "API_MAX_BODY_BYTES", "want 1024..10485760, got %d", s.MaxBodyBytes)
	check(s.RequestTimeout > 0, "API_REQUEST_TIMEOUT", "want a positive duration, got %s", s.RequestTimeout)
	check(s.ShutdownTimeout > 0, "API_SHUTDOWN_TIMEOUT", "want a positive duration, got %s", s.ShutdownTimeout)
	check(s.DrainDelay >= 0, "API_DRAIN_DELAY", "want zero or a positive duration, got %s", s.DrainDelay)
	check(s.MaxLines >= 1 && s.MaxLines <= 50, "ORDER_MAX_LINES", "want 1..50 (the OrderPlaced schema allows 50), got %d", s.MaxLines)
	check(s.MaxQuantity >= 1 && s.MaxQuantity <= 999, "ORDER_MAX_QUANTITY", "want 1..999, got %d", s.MaxQuantity)
	check(s.HoldTTL >= 10*time.Second, "HOLD_TTL", "want at least 10s, got %s", s.HoldTTL)
	check(s.PendingTTL >= s.HoldTTL, "PENDING_ORDER_TTL", "want at least HOLD_TTL (%s), got %s", s.HoldTTL, s.PendingTTL)
	check(s.IdempotencyTTL >= time.Minute, "IDEMPOTENCY_TTL", "want at least 1m, got %s", s.IdempotencyTTL)
	check(s.IdempotencyLease >= time.Second && s.IdempotencyLease < s.IdempotencyTTL, "IDEMPOTENCY_LEASE", "want 1s up to IDEMPOTENCY_TTL, got %s", s.IdempotencyLease)
	check(s.RateLimit >= 0, "RATE_LIMIT_PER_SECOND", "want 0 or more, got %d", s.RateLimit)
	check(s.RateBurst >= 1, "RATE_LIMIT_BURST", "want at least 1, got %d", s.RateBurst)
	check(s.AuthFailureRate >= 0, "AUTH_FAILURE_RATE_PER_SECOND", "want 0 or more, got %d", s.AuthFailureRate)
	check(s.AuthFailureBurst >= 1, "AUTH_FAILURE_BURST", "want at least 1, got %d", s.AuthFailureBurst)
	if _, err := s.trustedProxies(); err != nil {
		errs = append(errs, config.Errorf("API_TRUSTED_PROXIES", "%v", err))
	}
	check(len(s.Currency) == 3, "SHOP_CURRENCY", "want an ISO 4217 code such as EUR, got %q", s.Currency)
	check(s.ShippingStandardMinor >= 0, "SHIPPING_STANDARD_MINOR", "want 0 or more, got %d", s.ShippingStandardMinor)
	check(s.ShippingExpressMinor >= 0, "SHIPPING_EXPRESS_MINOR", "want 0 or more, got %d", s.ShippingExpressMinor)
	check(s.LowStock >= 0, "LOW_STOCK_THRESHOLD", "want 0 or more, got %d", s.LowStock)
	check(s.InventoryMaxAge >= 0, "INVENTORY_CACHE_MAX_AGE", "want 0 or more, got %s", s.InventoryMaxAge)
	check(s.CatalogRefresh >= 100*time.Millisecond, "CATALOG_REFRESH_INTERVAL", "want at least 100ms, got %s", s.CatalogRefresh)
	check(s.SoldOutGate == "after-idempotency" || s.SoldOutGate == "before-idempotency", "SOLDOUT_GATE", "want after-idempotency or before-idempotency, got %q", s.SoldOutGate)
	check(s.EventSource != "", "EVENT_SOURCE", "must not be empty")
	check(s.ProductsMaxAge >= 0, "PRODUCTS_CACHE_MAX_AGE", "want 0 or more, got %s", s.ProductsMaxAge)
	check(s.PromoSchedulerTick >= 100*time.Millisecond, "PROMO_SCHEDULER_INTERVAL", "want at least 100ms, got %s", s.PromoSchedulerTick)
	check(s.PromoRepublish >= s.PromoSchedulerTick, "PROMO_REPUBLISH_INTERVAL", "want at least PROMO_SCHEDULER_INTERVAL (%s), got %s", s.PromoSchedulerTick, s.PromoRepublish)
	return errorsJoin(errs)
}

// trustedProxies parses API_TRUSTED_PROXIES.
func (s *Settings) trustedProxies() ([]*net.IPNet, error) {
	var out []*net.IPNet
	for _, c := range s.TrustedProxies {
		if c = strings.TrimSpace(c); c == "" {
			continue
		}
		_, n, err := net.ParseCIDR(c)
		if err != nil {
			return nil, fmt.Errorf("want CIDRs such as 10.0.0.0/8, got %q", c)
		}
		out = append(out, n)
	}
	return out, nil
}
