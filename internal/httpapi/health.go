package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
)

func handleLive() echo.HandlerFunc {
	return func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	}
}

type readiness struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

// handleReady reports 503 while draining (so the load balancer stops sending traffic before
// the server stops) or when a dependency does not answer within a second.
func handleReady(checks []Check, draining func() bool, log *slog.Logger) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx, cancel := context.WithTimeout(c.Request().Context(), time.Second)
		defer cancel()
		r := readiness{Status: "ok", Checks: make(map[string]string, len(checks))}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, ch := range checks {
			wg.Go(func() {
				res := "ok"
				if err := ch.Fn(ctx); err != nil {
					res = "down"
					log.Warn("readiness check failed", "check", ch.Name, "err", err)
				}
				mu.Lock()
				r.Checks[ch.Name] = res
				if res != "ok" {
					r.Status = "unavailable"
				}
				mu.Unlock()
			})
		}
		wg.Wait()
		if draining != nil && draining() {
			r.Status = "draining"
		}
		if r.Status != "ok" {
			return c.JSON(http.StatusServiceUnavailable, r)
		}
		return c.JSON(http.StatusOK, r)
	}
}
