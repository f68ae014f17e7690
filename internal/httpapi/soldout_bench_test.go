package httpapi_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
)

// BenchmarkSoldOutRejection measures how fast POST /v1/orders refuses orders for a SKU known to
// be sold out, against the ceiling of a bare Echo server answering every POST with a fixed 409
// problem document, over the same loopback HTTP client in the same run. Both read the body; the
// api also authenticates, runs the idempotency protocol (two Redis round trips: the stored answer
// of a retried key must win over the fast path) and decodes and validates the order; the fast path
// itself skips the event build, its schema validation and the reservation's Redis call.
//
//	go test -run '^$' -bench SoldOutRejection -benchtime 5s ./internal/httpapi/
func BenchmarkSoldOutRejection(b *testing.B) {
	b.Run("bare-echo", func(b *testing.B) {
		e := echo.New()
		e.HideBanner, e.HidePort = true, true
		e.POST("/v1/orders", func(c echo.Context) error {
			if _, err := io.ReadAll(c.Request().Body); err != nil {
				return err
			}
			c.Response().Header().Set(echo.HeaderContentType, "application/problem+json")
			return c.String(http.StatusConflict, `{"type":"https://orderpipe.dev/problems/out-of-stock","title":"Out of stock","status":409,"short":[{"sku":"BRK-PAD-1001","requested":1,"available":0}]}`)
		})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		srv := &http.Server{Handler: e}
		go func() {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				b.Error(err)
			}
		}()
		b.Cleanup(func() { _ = srv.Close() })
		hammer(b, "http://"+ln.Addr().String(), "op_bench")
	})
	b.Run("api-soldout-gate-before-idempotency", func(b *testing.B) {
		s := openShop(b, 0, map[string]string{"SOLDOUT_GATE": "before-idempotency"})
		if code, body := s.order(b); code != http.StatusConflict { // learns the SKU is sold out
			b.Fatalf("first order: %d %s", code, body)
		}
		gate := s.metric(b, "orderpipe_http_soldout_gate_total")
		hammer(b, s.url, s.token)
		b.StopTimer()
		b.ReportMetric((s.metric(b, "orderpipe_http_soldout_gate_total")-gate)/float64(b.N), "gate/op")
	})
	b.Run("api-soldout", func(b *testing.B) {
		s := openShop(b, 0)
		if code, body := s.order(b); code != http.StatusConflict { // learns the SKU is sold out
			b.Fatalf("first order: %d %s", code, body)
		}
		fast := s.metric(b, "orderpipe_intake_soldout_fastpath_total")
		reserves := s.metric(b, "orderpipe_intake_reserve_seconds")
		hammer(b, s.url, s.token)
		b.StopTimer()
		f := s.metric(b, "orderpipe_intake_soldout_fastpath_total") - fast
		r := s.metric(b, "orderpipe_intake_reserve_seconds") - reserves
		b.ReportMetric(r/float64(b.N), "redis-reservations/op")
		b.ReportMetric(f/float64(b.N), "fastpath/op")
	})
}

// hammer posts b.N sold-out orders from parallel keep-alive clients and reports requests/s.
func hammer(b *testing.B, url, token string) {
	tr := &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256, IdleConnTimeout: time.Minute}
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	b.Cleanup(tr.CloseIdleConnections)
	b.SetParallelism(8)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodPost, url+"/v1/orders", bytes.NewReader(orderBody))
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Idempotency-Key", uuid.NewString())
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusConflict {
				b.Errorf("status %d, want 409", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}
