package httpapi

import (
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/orderpipe/orderpipe/internal/auth"
)

// addRoutes is the whole API surface at a glance: path, scope, middleware.
func addRoutes(e *echo.Echo, cfg Config, d Deps, m *metrics, query queryRules) {
	// After routing, for every route: path parameters decoded once, query parameters within the
	// limits of schemas/openapi.yaml (query.go).
	e.Use(middleware.Recover(), middleware.RequestID(), m.middleware(), decodePathParams(), query.checkQuery())
	// Every GET route answers HEAD too (RFC 9110 section 9.3.2): the same handler and headers;
	// net/http drops the body.
	get := func(path string, h echo.HandlerFunc, mw ...echo.MiddlewareFunc) {
		e.Match([]string{http.MethodGet, http.MethodHead}, path, h, mw...)
	}

	// Operations: no auth.
	get("/livez", handleLive())
	get("/healthz", handleLive()) // the same liveness answer under the name many probes default to
	get("/readyz", handleReady(d.Checks, d.Draining, d.Log))
	get("/metrics", echo.WrapHandler(promhttp.HandlerFor(d.Gatherer, promhttp.HandlerOpts{})))

	// Public reads: no auth (CDN-friendly).
	get("/v1/inventory/:sku", handleInventory(cfg, d.Catalog, d.Store))
	// Catalog reads: effective prices and availability, gzip, ETag and Cache-Control (catalog.go).
	cr := catalogReader{cfg: cfg, prices: d.Prices, stock: d.Store.Availability, promoSold: d.Store.PromoSold}
	gz := middleware.GzipWithConfig(middleware.GzipConfig{Level: 5, MinLength: 256})
	get("/v1/products", handleListProducts(d.Catalog, cr), gz)
	get("/v1/products/:sku", handleGetProduct(d.Catalog, cr), gz)

	limit := rateLimit(cfg, d.Store, m, d.Log)                // one denial memory for every route: the limit is per key
	authn := newAuthenticator(cfg, d.Keys, d.Store, m, d.Log) // failed authentications limited per address (authn.go)
	authed := func(scope string) []echo.MiddlewareFunc {
		return []echo.MiddlewareFunc{authn.require(scope), limit}
	}
	// Checkout. The sold-out gate runs before the idempotency protocol only when configured so
	// (SOLDOUT_GATE=before-idempotency); by default the intake path checks it (soldoutgate.go).
	placeMW := authed(auth.ScopeOrdersWrite)
	if cfg.SoldOutGate == GateBeforeIdempotency && d.SoldOut != nil {
		placeMW = append(placeMW, soldOutGate(cfg, d.SoldOut, m.soldOutGate))
	}
	e.POST("/v1/orders", handlePlaceOrder(cfg, d.Intake), append(placeMW, idempotent(cfg, d.Store, d.Log))...)
	get("/v1/orders/:id", handleGetOrder(d.OrderByID, d.DeadLetter, d.Store), authed(auth.ScopeOrdersRead)...)
	// Catalog management.
	e.PUT("/v1/products/:sku", handlePutProduct(cfg, d.Catalog, d.SaveProduct, d.Repriced), authed(auth.ScopeCatalogWrite)...)
	// Promotions (promotions.go): scheduled, changed and ended by merchandisers.
	if d.Promotions != nil {
		e.POST("/v1/promotions", handleCreatePromotion(cfg, d.Promotions), authed(auth.ScopeCatalogWrite)...)
		get("/v1/promotions", handleListPromotions(d.Promotions), authed(auth.ScopeCatalogWrite)...)
		get("/v1/promotions/:id", handleGetPromotion(d.Promotions), authed(auth.ScopeCatalogWrite)...)
		e.PATCH("/v1/promotions/:id", handleUpdatePromotion(cfg, d.Promotions), authed(auth.ScopeCatalogWrite)...)
		e.DELETE("/v1/promotions/:id", handleEndPromotion(d.Promotions), authed(auth.ScopeCatalogWrite)...)
		get("/v1/reports/promotions", handlePromotionReport(d.Promotions), authed(auth.ScopeReportsRead)...)
	}
	// Warehouses without Kafka: the webhook bridge to inventory.stock (warehouse.go).
	e.POST("/v1/warehouse/stock", handleWarehouseStock(cfg, d.Catalog, d.Warehouse), authed(auth.ScopeInventoryWrite)...)
	// Trade accounts: customers whose orders use the priority lane (tradeaccounts.go).
	if d.TradeAccounts != nil {
		ta := *d.TradeAccounts
		get("/v1/trade-accounts", handleListTradeAccounts(ta), authed(auth.ScopeAccountsWrite)...)
		e.PUT("/v1/trade-accounts/:customer_id", handlePutTradeAccount(cfg, ta, d.Log), authed(auth.ScopeAccountsWrite)...)
		e.DELETE("/v1/trade-accounts/:customer_id", handleDeleteTradeAccount(ta, d.Log), authed(auth.ScopeAccountsWrite)...)
	}
	// Sales figures for the shop's managers (reports.go).
	get("/v1/reports/sales", handleSalesReport(d.SalesReport), authed(auth.ScopeReportsRead)...)
}
