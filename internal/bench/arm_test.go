package bench

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/orderpipe/orderpipe/internal/config"
	"github.com/orderpipe/orderpipe/internal/redisstore"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

func post(t *testing.T, url string, header http.Header, body []byte) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

func startServer(t *testing.T, h http.Handler) *server {
	t.Helper()
	srv, err := serve(h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return srv
}

func TestBareHandler(t *testing.T) {
	t.Parallel()
	srv := startServer(t, bareHandler())
	json := http.Header{"Content-Type": {"application/json"}}
	tests := []struct {
		name string
		body []byte
		want int
	}{
		{"the benchmark order", orderBody(hotSKU), http.StatusAccepted},
		{"unknown field", []byte(`{"customer_id":"c","lines":[{"sku":"A-1","quantity":1}],"coupon":"x"}`), http.StatusBadRequest},
		{"no lines", []byte(`{"customer_id":"c","lines":[]}`), http.StatusUnprocessableEntity},
		{"not json", []byte(`{`), http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := post(t, srv.url+"/v1/orders", json, tt.body); got != tt.want {
				t.Fatalf("status = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestAttack(t *testing.T) {
	t.Parallel()
	srv := startServer(t, bareHandler())
	tg := newTarget(srv.url+"/v1/orders", http.Header{"Content-Type": {"application/json"}}, orderBody(hotSKU))
	tests := []struct {
		name string
		load load
		min  int
		max  int
	}{
		// 200/s for 500 ms is 100 requests on schedule (a busy machine may delay a few).
		{"open model", load{label: "open", rate: 200, workers: 4, duration: 500 * time.Millisecond}, 80, 101},
		{"closed loop", load{label: "closed", workers: 4, duration: 300 * time.Millisecond}, 20, 1 << 30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := attack(t.Context(), tg, "test-"+tt.name+"-", tt.load)
			if r.requests < tt.min || r.requests > tt.max {
				t.Fatalf("requests = %d, want %d..%d", r.requests, tt.min, tt.max)
			}
			if r.accepted() != r.requests {
				t.Fatalf("answers %s, want all 202 (errors %q)", statusSummary(r.codes), r.errSamples)
			}
			if len(r.latencies) != r.requests || r.quantile(0.5) <= 0 || r.quantile(0.5) > r.quantile(1) {
				t.Fatalf("latencies: %d for %d requests, p50 %v, max %v", len(r.latencies), r.requests, r.quantile(0.5), r.quantile(1))
			}
			if r.elapsed <= 0 || r.throughput() <= 0 {
				t.Fatalf("elapsed %v, throughput %v: want both positive", r.elapsed, r.throughput())
			}
		})
	}
}

func TestAttackCountsErrors(t *testing.T) {
	t.Parallel()
	srv := startServer(t, bareHandler())
	// Without a line the bare handler answers 422: every request must count as not 202.
	tg := newTarget(srv.url+"/v1/orders", http.Header{"Content-Type": {"application/json"}}, []byte(`{"lines":[]}`))
	r := attack(t.Context(), tg, "err-", load{label: "bad", rate: 100, workers: 2, duration: 200 * time.Millisecond})
	if r.requests == 0 || r.failed() != r.requests || r.codes[http.StatusUnprocessableEntity] != r.requests {
		t.Fatalf("answers %s for %d requests, want all 422", statusSummary(r.codes), r.requests)
	}
	if len(r.errSamples) != 1 || !strings.Contains(r.errSamples[0], "HTTP 422") {
		t.Fatalf("error samples = %q, want one HTTP 422 sample", r.errSamples)
	}
}

func TestNaiveArm(t *testing.T) {
	t.Parallel()
	pool, _ := testenv.Postgres(t)
	const stock = 2
	if err := setupNaive(t.Context(), pool, hotSKU, stock); err != nil {
		t.Fatalf("setupNaive: %v", err)
	}
	srv := startServer(t, naiveHandler(pool))
	hdr := http.Header{"Content-Type": {"application/json"}}
	var codes []int
	for range 3 {
		codes = append(codes, post(t, srv.url+"/v1/orders", hdr, orderBody(hotSKU)))
	}
	if want := []int{202, 202, 409}; !equalInts(codes, want) {
		t.Fatalf("statuses = %v, want %v (stock %d)", codes, want, stock)
	}
	st := naiveState{stock: stock, accepted: 2}
	var err error
	st.onHand, st.allocated, st.orderRows, st.units, err = readNaive(t.Context(), pool, hotSKU)
	if err != nil {
		t.Fatalf("readNaive: %v", err)
	}
	if p := st.problems(); len(p) != 0 {
		t.Fatalf("problems after a sell-out: %q (state %s)", p, st)
	}
	// Plant an oversell behind the design's back: the check must see it.
	if _, err := pool.Exec(t.Context(), `UPDATE naive_stock SET allocated = allocated + 1 WHERE sku = $1`, hotSKU); err != nil {
		t.Fatal(err)
	}
	st.onHand, st.allocated, st.orderRows, st.units, err = readNaive(t.Context(), pool, hotSKU)
	if err != nil {
		t.Fatalf("readNaive: %v", err)
	}
	if p := st.problems(); len(p) == 0 || !strings.Contains(p[0], "oversold 1 units") {
		t.Fatalf("problems after a planted oversell = %q, want oversold 1 units first", p)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestIntakeArm boots the real api as the benchmark does, places a few orders with the load
// generator, and checks the books; then plants a hold no order was answered for and expects the
// check to fail.
func TestIntakeArm(t *testing.T) {
	t.Parallel()
	_, dbURL := testenv.Postgres(t)
	rdb, prefix := testenv.Redis(t)
	store := redisstore.New(rdb, prefix)
	const stock = 1000
	token, err := seedIntake(t.Context(), dbURL, store, hotSKU, stock)
	if err != nil {
		t.Fatalf("seedIntake: %v", err)
	}
	cfg := Config{Redis: config.Redis{RedisAddrs: []string{rdb.Options().Addr}}}
	arm, err := startIntake(t.Context(), cfg, dbURL, prefix, token, store)
	if err != nil {
		t.Fatalf("startIntake: %v", err)
	}
	t.Cleanup(arm.close)

	r := attack(t.Context(), arm.target(hotSKU), "t-", load{label: "smoke", rate: 100, workers: 4, duration: 300 * time.Millisecond})
	if r.requests < 20 || r.failed() != 0 {
		t.Fatalf("%d requests, answers %s (%q): want at least 20, all 202", r.requests, statusSummary(r.codes), r.errSamples)
	}
	if err := arm.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if s := arm.logs.summary(); s != "no warnings or errors" {
		t.Fatalf("api log: %s", s)
	}
	st, err := arm.state(t.Context(), hotSKU, stock, int64(r.accepted()))
	if err != nil {
		t.Fatalf("state: %v", err)
	}
	if p := st.problems(); len(p) != 0 {
		t.Fatalf("problems: %q (state %s)", p, st)
	}
	if st.records != int64(r.accepted()) || st.held != int64(r.accepted()) {
		t.Fatalf("state %s, want %d records and held", st, r.accepted())
	}

	// A hold nobody was answered for: conservation still holds, held != 202s.
	if _, err := store.Reserve(context.WithoutCancel(t.Context()), "00000000-0000-7000-8000-000000000001",
		[]redisstore.Line{{SKU: hotSKU, Qty: 1}}, time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("plant a hold: %v", err)
	}
	st, err = arm.state(t.Context(), hotSKU, stock, int64(r.accepted()))
	if err != nil {
		t.Fatalf("state: %v", err)
	}
	if p := st.problems(); len(p) != 1 || !strings.Contains(p[0], "held") {
		t.Fatalf("problems after a planted hold = %q, want one about held units", p)
	}
}
