package httpapi_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/orderpipe/orderpipe/internal/auth"
	"github.com/orderpipe/orderpipe/internal/httpapi"
	"github.com/orderpipe/orderpipe/internal/redisstore"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

// A handler that panics behind the idempotency middleware: the client gets the 500 problem
// document (it used to get an empty 200, the 500 went into the recorder), and the record is
// reopened, so the retry with the same key runs again at once instead of 409 for the lease.
func TestIdempotentHandlerPanicAnswers500AndReopens(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	store := redisstore.New(rdb, prefix)
	log := slog.New(slog.DiscardHandler)
	cfg := httpapi.Config{MaxBodyBytes: 1 << 16, IdempotencyLease: time.Minute, IdempotencyTTL: time.Hour, PendingTTL: time.Minute}

	e := echo.New()
	e.HTTPErrorHandler = httpapi.ErrorHandler(log)
	e.Use(middleware.Recover()) // as in production: outside the idempotency middleware
	calls := 0
	e.POST("/v1/orders", func(c echo.Context) error {
		calls++
		if calls == 1 {
			panic("a bug in the handler")
		}
		return c.JSON(http.StatusAccepted, map[string]string{"status": "pending"})
	}, func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			httpapi.SetKey(c, auth.Key{ID: "k-panic"})
			return next(c)
		}
	}, httpapi.Idempotent(cfg, store, log))
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)

	post := func() (int, string, []byte) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/orders", strings.NewReader(`{"lines":[]}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", "panic-key")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), b
	}

	code, ct, body := post()
	var p struct {
		Status int `json:"status"`
	}
	if code != http.StatusInternalServerError || ct != "application/problem+json" || json.Unmarshal(body, &p) != nil || p.Status != 500 {
		t.Fatalf("after a panic: %d %q %s, want 500 application/problem+json", code, ct, body)
	}
	if code, _, body := post(); code != http.StatusAccepted || calls != 2 {
		t.Fatalf("retry with the same key: %d %s after %d handler calls, want 202 from a second run", code, body, calls)
	}
}
