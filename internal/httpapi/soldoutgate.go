package httpapi

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// Sold-out gate positions (SOLDOUT_GATE).
const (
	// GateAfterIdempotency (the default) checks sold-out SKUs inside the intake path, after the
	// Idempotency-Key lookup: a retry of an order that was accepted always gets its stored 202.
	GateAfterIdempotency = "after-idempotency"
	// GateBeforeIdempotency refuses orders for SKUs known to be sold out before the
	// Idempotency-Key lookup, with no Redis call at all. It is faster, at a documented cost: a
	// client that lost the 202 of an accepted order and retries it after the SKU sold out gets
	// 409 for an order that will still be charged and confirmed (and e-mailed).
	GateBeforeIdempotency = "before-idempotency"
)

// SoldOutSKUs says whether a SKU is known to be sold out (StockView).
type SoldOutSKUs interface {
	SoldOut(sku string) bool
}

// soldOutGate refuses, before the idempotency protocol, orders with a line whose SKU is known to
// be sold out. It reads the (size-limited) body and hands it on untouched otherwise.
func soldOutGate(cfg Config, view SoldOutSKUs, refused prometheus.Counter) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			body, err := readLimited(c, cfg.MaxBodyBytes)
			if err != nil {
				return err
			}
			var req struct {
				Lines []struct {
					SKU      string `json:"sku"`
					Quantity int64  `json:"quantity"`
				} `json:"lines"`
			}
			if json.Unmarshal(body, &req) == nil {
				var short []ProblemShort
				for _, l := range req.Lines {
					if l.SKU != "" && view.SoldOut(l.SKU) {
						short = append(short, ProblemShort{SKU: l.SKU, Requested: l.Quantity})
					}
				}
				if len(short) > 0 {
					refused.Inc()
					p := newProblem(http.StatusConflict, "out-of-stock", "Out of stock", "Some lines cannot be fulfilled; see short for what is available.")
					p.Short = short
					return p
				}
			}
			c.Request().Body = io.NopCloser(bytes.NewReader(body))
			return next(c)
		}
	}
}
