// Package httpapi is the HTTP adapter of the api process: the Echo server, its routes
// (routes.go lists them all), authentication, rate limiting, idempotency, and the mapping of
// domain errors to RFC 9457 problem documents. Handlers are closures over their dependencies
// and just return errors.
package httpapi

import (
	"context"
	"log/slog"
	"net"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderpipe/orderpipe/internal/auth"
	"github.com/orderpipe/orderpipe/internal/catalog"
	"github.com/orderpipe/orderpipe/internal/intake"
	"github.com/orderpipe/orderpipe/internal/redisstore"
)

// Config are the HTTP-level rules.
type Config struct {
	MaxBodyBytes     int64
	MaxLines         int
	MaxQuantity      int64
	IdempotencyTTL   time.Duration
	IdempotencyLease time.Duration
	PendingTTL       time.Duration // how long the pending snapshot of an accepted order answers GET
	SoldOutGate      string        // GateAfterIdempotency or GateBeforeIdempotency
	RateLimit        int           // requests per second per API key
	RateBurst        int
	AuthFailureRate  int // failed authentications per second per client address (0: no limit)
	AuthFailureBurst int
	TrustedProxies   []*net.IPNet // whose X-Forwarded-For names the client (none: the TCP peer is the client)
	LowStock         int64        // at or below this, availability says low_stock
	InventoryMaxAge  time.Duration
	ProductsMaxAge   time.Duration // Cache-Control max-age of catalog reads (cut at the next price change)
}

// Store is the part of the Redis store the HTTP layer uses directly.
type Store interface {
	BeginIdempotent(ctx context.Context, scope, key, bodyHash, newID string, lease, ttl time.Duration, now time.Time) (redisstore.IdemBegin, error)
	FinishIdempotent(ctx context.Context, scope, key string, status int, contentType string, body []byte, snaps ...redisstore.Snapshot) error
	AbortIdempotent(ctx context.Context, scope, key string) error
	Allow(ctx context.Context, scope string, ratePerSec, burst int) (redisstore.RateResult, error)
	Availability(ctx context.Context, sku string) (redisstore.Stock, error)
	PendingOrder(ctx context.Context, orderID string) ([]byte, bool, error)
	PromoSold(ctx context.Context, sku, promotionID string) (int64, error)
}

// Check is one readiness check.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}

// Deps are what the handlers close over.
type Deps struct {
	Keys          *auth.Keys
	Catalog       *catalog.Cache
	Intake        *intake.Service
	Store         Store
	OrderByID     func(ctx context.Context, id string) (intake.View, bool, error)       // Postgres, the truth
	DeadLetter    func(ctx context.Context, id string) (*intake.DeadLetter, error)      // a pending order parked in the dead-letter topic
	SaveProduct   func(ctx context.Context, p catalog.Product) (catalog.Product, error) // Postgres, then cache
	Warehouse     WarehouseDeps                                                         // POST /v1/warehouse/stock
	SalesReport   func(ctx context.Context, q SalesQuery) ([]SalesRow, error)           // GET /v1/reports/sales (Postgres aggregates)
	SoldOut       SoldOutSKUs                                                           // the sold-out view, for the gate before the idempotency protocol
	Prices        PriceTimelines                                                        // published price timelines (nil: no promotions)
	Promotions    Promotions                                                            // /v1/promotions and the promotion report (nil: not served)
	Repriced      func(ctx context.Context, sku string) error                           // republish a SKU's prices after its product changed
	TradeAccounts *TradeAccounts                                                        // /v1/trade-accounts (nil: not served)
	Checks        []Check
	Draining      func() bool
	Log           *slog.Logger
	Registry      prometheus.Registerer
	Gatherer      prometheus.Gatherer
}

// New builds the Echo server with every route.
func New(cfg Config, d Deps) (*echo.Echo, error) {
	rules, err := loadQueryRules()
	if err != nil {
		return nil, err
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = errorHandler(d.Log)
	e.IPExtractor = ipExtractor(cfg.TrustedProxies)
	m := newMetrics(d.Registry)
	addRoutes(e, cfg, d, m, rules)
	m.zero(e.Routes())
	return e, nil
}
