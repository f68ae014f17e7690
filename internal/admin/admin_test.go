package admin

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// The worker processes' operations endpoints: liveness under both names, readiness that follows
// its checks and the drain, and metrics.
func TestEndpoints(t *testing.T) {
	t.Parallel()
	var redisDown atomic.Bool
	checks := []Check{
		{Name: "postgres", Fn: func(context.Context) error { return nil }},
		{Name: "redis", Fn: func(context.Context) error {
			if redisDown.Load() {
				return errors.New("connection refused")
			}
			return nil
		}},
	}
	s, err := Listen("127.0.0.1:0", checks, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve() }()
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	get := func(path string) (int, map[string]any) {
		t.Helper()
		resp, err := http.Get("http://" + s.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}

	for _, path := range []string{"/livez", "/healthz", "/readyz", "/metrics"} {
		if code, _ := get(path); code != http.StatusOK {
			t.Errorf("GET %s: %d, want 200", path, code)
		}
	}
	redisDown.Store(true)
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable || body["status"] != "unavailable" ||
		body["checks"].(map[string]any)["redis"] != "down" || body["checks"].(map[string]any)["postgres"] != "ok" {
		t.Errorf("readyz with Redis down: %d %v, want 503 naming redis down", code, body)
	}
	if code, _ := get("/livez"); code != http.StatusOK {
		t.Errorf("livez with Redis down: %d, want 200 (the process is alive)", code)
	}
	redisDown.Store(false)
	s.Drain()
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable || body["status"] != "draining" {
		t.Errorf("readyz while draining: %d %v, want 503 draining", code, body)
	}
}
