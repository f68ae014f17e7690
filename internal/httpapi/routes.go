package httpapi

import (
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/orderpipe/orderpipe/internal/auth"
)

// addRoutes is the whole API surface at a glance: path, scope, middleware.
func addRoutes(e *echo.Echo, cfg Config, d Deps, m *metrics) {
	e.Use(middleware.Recover(), middleware.RequestID(), m.middleware())

	// Operations: no auth.
	e.GET("/livez", handleLive())
	e.GET("/readyz", handleReady(d.Checks, d.Draining, d.Log))
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(d.Gatherer, promhttp.HandlerOpts{})))

	// Public reads: no auth (CDN-friendly).
	e.GET("/v1/inventory/:sku", handleInventory(cfg, d.Catalog, d.Store))
	e.GET("/v1/products", handleListProducts(d.Catalog))
	e.GET("/v1/products/:sku", handleGetProduct(d.Catalog))

	authed := func(scope string) []echo.MiddlewareFunc {
		return []echo.MiddlewareFunc{requireKey(d.Keys, scope), rateLimit(cfg, d.Store, d.Log)}
	}
	// Checkout. The sold-out gate runs before the idempotency protocol only when configured so
	// (SOLDOUT_GATE=before-idempotency); by default the intake path checks it (soldoutgate.go).
	placeMW := authed(auth.ScopeOrdersWrite)
	if cfg.SoldOutGate == GateBeforeIdempotency && d.SoldOut != nil {
		placeMW = append(placeMW, soldOutGate(cfg, d.SoldOut, m.soldOutGate))
	}
	e.POST("/v1/orders", handlePlaceOrder(cfg, d.Intake), append(placeMW, idempotent(cfg, d.Store, d.Log))...)
	e.GET("/v1/orders/:id", handleGetOrder(d.OrderByID, d.DeadLetter, d.Store), authed(auth.ScopeOrdersRead)...)
	// Catalog management.
	e.PUT("/v1/products/:sku", handlePutProduct(cfg, d.Catalog, d.SaveProduct), authed(auth.ScopeCatalogWrite)...)
	// Warehouses without Kafka: the webhook bridge to inventory.stock (warehouse.go).
	e.POST("/v1/warehouse/stock", handleWarehouseStock(cfg, d.Catalog, d.Warehouse), authed(auth.ScopeInventoryWrite)...)
	// Sales figures for the shop's managers (reports.go).
	e.GET("/v1/reports/sales", handleSalesReport(d.SalesReport), authed(auth.ScopeReportsRead)...)
}
