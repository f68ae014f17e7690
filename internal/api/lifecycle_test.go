package api_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/orderpipe/orderpipe/internal/api"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

// Redis unreachable (a cut connection, as in a crash or a partition): orders get 503 with
// Retry-After, readiness fails, and once Redis is back nothing is held for the refused orders.
func TestRedisDownAnswers503AndHoldsNothing(t *testing.T) {
	t.Parallel()
	proxy := testenv.NewProxy(t, "127.0.0.1:6379")
	b := setup(t, setupOpts{redisAddr: proxy.Addr(), env: map[string]string{"REDIS_TIMEOUT": "200ms"}})
	if r := b.place(t, uuid.NewString(), orderBody("BRK-PAD-1001", 1)); r.status != http.StatusAccepted {
		t.Fatalf("before the outage: %d %s", r.status, r.body)
	}
	proxy.Cut()
	r := b.place(t, uuid.NewString(), orderBody("BRK-PAD-1001", 1, "FLT-OIL-2001", 2))
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Fatalf("during the outage: %d Retry-After %q %s, want 503 with Retry-After", r.status, r.header.Get("Retry-After"), r.body)
	}
	r.problem(t)
	if r := b.do(t, http.MethodGet, "/readyz", "", nil, nil); r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), `"redis":"down"`) {
		t.Fatalf("readyz during the outage: %d %s", r.status, r.body)
	}
	proxy.Restore()
	if st := b.stockOf(t, "BRK-PAD-1001"); st.Held != 1 || st.ATP != 99 {
		t.Fatalf("BRK-PAD-1001 atp=%d held=%d, want only the first order's hold (99/1)", st.ATP, st.Held)
	}
	if st := b.stockOf(t, "FLT-OIL-2001"); st.Held != 0 || st.ATP != 50 {
		t.Fatalf("FLT-OIL-2001 atp=%d held=%d, want untouched", st.ATP, st.Held)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := b.place(t, uuid.NewString(), orderBody("FLT-OIL-2001", 2))
		if r.status == http.StatusAccepted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after Redis came back: %d %s", r.status, r.body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// On shutdown the api first fails readiness (draining) for API_DRAIN_DELAY, then stops
// accepting, finishes in-flight requests and returns without error. The test follows the events
// (readyz draining, an order served, Run returning) in order; the drain delay is long enough
// that no machine is too slow to place an order inside it, and the order is placed only while Run
// has visibly not returned yet.
func TestGracefulShutdownDrains(t *testing.T) {
	t.Parallel()
	const drain = 8 * time.Second
	b := setup(t, setupOpts{env: map[string]string{"API_DRAIN_DELAY": drain.String()}})
	stopped := make(chan error, 1)
	go func() { stopped <- b.stop() }()
	deadline := time.Now().Add(drain)
	sawDraining := false
	for time.Now().Before(deadline) && !sawDraining {
		resp, err := http.Get(b.url + "/readyz")
		if err == nil {
			var buf bytes.Buffer
			_, _ = buf.ReadFrom(resp.Body)
			resp.Body.Close()
			sawDraining = resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(buf.String(), "draining")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !sawDraining {
		t.Fatal("readyz never answered 503 draining during the drain delay")
	}
	select {
	case err := <-stopped:
		t.Fatalf("Run returned (%v) right after readyz said draining: no drain delay", err)
	default:
	}
	// Orders are still served while draining (the load balancer is moving traffic away).
	if r := b.place(t, uuid.NewString(), orderBody("BRK-PAD-1001", 1)); r.status != http.StatusAccepted {
		t.Fatalf("order while draining: %d %s", r.status, r.body)
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("Run returned %v, want nil after a graceful stop", err)
		}
	case <-time.After(drain + 20*time.Second):
		t.Fatal("api did not stop")
	}
	if _, err := http.Get(b.url + "/livez"); err == nil {
		t.Fatal("api still listening after it stopped")
	}
}

func TestConfigErrorsNameTheVariable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"HOLD_TTL": "soon"}, "HOLD_TTL"},
		{map[string]string{"HOLD_TTL": "1s"}, "HOLD_TTL"},
		{map[string]string{"DATABASE_MAX_CONNS": "-3"}, "DATABASE_MAX_CONNS"},
		{map[string]string{"REDIS_KEY_PREFIX": "op:{x}"}, "REDIS_KEY_PREFIX"},
		{map[string]string{"LOG_LEVEL": "chatty"}, "LOG_LEVEL"},
		{map[string]string{"ORDER_MAX_QUANTITY": "5000"}, "ORDER_MAX_QUANTITY"},
		{map[string]string{"DATABASE_URL": "mysql://x"}, "DATABASE_URL"},
		{map[string]string{"RATE_LIMIT_BURST": "many"}, "RATE_LIMIT_BURST"},
		{map[string]string{"AUTH_FAILURE_BURST": "0"}, "AUTH_FAILURE_BURST"},
		{map[string]string{"API_TRUSTED_PROXIES": "10.0.0.0/8,lb.internal"}, "API_TRUSTED_PROXIES"},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		err := api.Run(context.Background(), nil, func(k string) string { return tt.env[k] }, &out)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("env %v: err = %v, want a message naming %s", tt.env, err, tt.want)
		}
	}
	var out bytes.Buffer
	if err := api.Run(context.Background(), []string{"-h"}, func(string) string { return "" }, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"API_ADDR", ":8080", "HOLD_TTL", "15m", "IDEMPOTENCY_TTL", "KAFKA_BROKERS", "DATABASE_URL", "REDIS_ADDRS"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("-h output lacks %q", want)
		}
	}
}
