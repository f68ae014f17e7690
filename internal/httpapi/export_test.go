package httpapi

import (
	"log/slog"

	"github.com/labstack/echo/v4"

	"github.com/orderpipe/orderpipe/internal/auth"
)

// Hooks for the external tests (package httpapi_test), which may import testenv; this package's
// own tests may not (testenv imports the api, which imports this package).

// Idempotent is the idempotency middleware of POST /v1/orders.
func Idempotent(cfg Config, store Store, log *slog.Logger) echo.MiddlewareFunc {
	return idempotent(cfg, store, log)
}

// ErrorHandler is the api's problem+json error handler.
func ErrorHandler(log *slog.Logger) echo.HTTPErrorHandler { return errorHandler(log) }

// SetKey authenticates c as k, as the authenticator does.
func SetKey(c echo.Context, k auth.Key) { c.Set(keyCtxKey, k) }
