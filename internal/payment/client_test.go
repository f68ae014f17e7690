package payment_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/orderpipe/orderpipe/internal/payment"
	"github.com/orderpipe/orderpipe/internal/paysim"
)

type bundle struct {
	sim    *paysim.Server
	client *payment.Client
	reg    *prometheus.Registry
}

// setup serves a simulator over loopback HTTP and builds a client for it. Zero fields of cfg
// take test-sized values: 200ms per attempt, 3 attempts, 5-20ms backoff, breaker after 5
// failures for 200ms.
func setup(t *testing.T, sim paysim.Config, cfg payment.ClientConfig) bundle {
	t.Helper()
	s := paysim.New(sim)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	cfg.BaseURL = ts.URL
	if cfg.Timeout == 0 {
		cfg.Timeout = 200 * time.Millisecond
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = 3
	}
	if cfg.BackoffInitial == 0 {
		cfg.BackoffInitial, cfg.BackoffMax = 5*time.Millisecond, 20*time.Millisecond
	}
	if cfg.BreakerFailures == 0 {
		cfg.BreakerFailures = 5
	}
	if cfg.BreakerOpenFor == 0 {
		cfg.BreakerOpenFor = 200 * time.Millisecond
	}
	reg := prometheus.NewRegistry()
	return bundle{sim: s, client: payment.NewClient(cfg, reg), reg: reg}
}

func req(order, token string) payment.ChargeRequest {
	return payment.ChargeRequest{OrderID: order, Token: token, Method: "card", AmountMinor: 12999, Currency: "EUR"}
}

func TestChargeCapturesOnceByOrderID(t *testing.T) {
	t.Parallel()
	b := setup(t, paysim.Config{Latency: time.Millisecond}, payment.ClientConfig{})
	first, err := b.client.Charge(t.Context(), req("ord-1", "tok_visa_4242"))
	if err != nil {
		t.Fatalf("first charge: %v", err)
	}
	if first.Status != payment.StatusCaptured || first.ID == "" || first.AmountMinor != 12999 || first.Currency != "EUR" {
		t.Fatalf("first charge: got %+v, want captured 12999 EUR with an id", first)
	}
	second, err := b.client.Charge(t.Context(), req("ord-1", "tok_visa_4242"))
	if err != nil {
		t.Fatalf("second charge: %v", err)
	}
	if second != first {
		t.Fatalf("second charge: got %+v, want the first result %+v", second, first)
	}
	if st := b.sim.Stats(); st.Captures != 1 || st.Duplicates != 1 {
		t.Fatalf("simulator: got %d captures %d duplicates, want 1 1", st.Captures, st.Duplicates)
	}
}

func TestDeclineIsNotAnError(t *testing.T) {
	t.Parallel()
	b := setup(t, paysim.Config{}, payment.ClientConfig{BreakerFailures: 2})
	tests := []struct{ token, want string }{
		{"tok_decline_0001", payment.DeclineCardDeclined},
		{"tok_insufficient_01", payment.DeclineInsufficientFunds},
		{"tok_expired_0001", payment.DeclineExpiredToken},
		{"tok_decline_0002", payment.DeclineCardDeclined},
	}
	for _, tt := range tests {
		ch, err := b.client.Charge(t.Context(), req("ord-"+tt.token, tt.token))
		if err != nil {
			t.Fatalf("%s: got error %v, want a decline", tt.token, err)
		}
		if ch.Status != payment.StatusDeclined || ch.DeclineCode != tt.want || ch.ID == "" {
			t.Fatalf("%s: got %+v, want declined %s", tt.token, ch, tt.want)
		}
	}
	// Four declines with a breaker that opens after two failures: declines are not failures.
	if got := b.client.State(); got != "closed" {
		t.Fatalf("breaker after declines: got %s, want closed", got)
	}
	if st := b.sim.Stats(); st.Requests != int64(len(tests)) {
		t.Fatalf("simulator requests: got %d, want %d (a decline is not retried)", st.Requests, len(tests))
	}
}

func TestTransientFailuresAreRetriedThenErrTransient(t *testing.T) {
	t.Parallel()
	b := setup(t, paysim.Config{}, payment.ClientConfig{MaxAttempts: 3})
	_, err := b.client.Charge(t.Context(), req("ord-fail", "tok_fail_0001"))
	if !errors.Is(err, payment.ErrTransient) || errors.Is(err, payment.ErrPermanent) {
		t.Fatalf("got %v, want ErrTransient only", err)
	}
	if !strings.Contains(err.Error(), "ord-fail") || !strings.Contains(err.Error(), "503") {
		t.Fatalf("error %q: want the order id and the provider's status", err)
	}
	if st := b.sim.Stats(); st.Requests != 3 || st.Captures != 0 {
		t.Fatalf("simulator: got %d requests %d captures, want 3 attempts and nothing captured", st.Requests, st.Captures)
	}
	if got := counter(t, b.reg, "orderpipe_payment_retries_total", "op", "charge"); got != 2 {
		t.Fatalf("retries metric: got %v, want 2", got)
	}
}

func TestLostAnswerIsRetriedWithoutChargingTwice(t *testing.T) {
	t.Parallel()
	// tok_lost: the first attempt captures, then the connection drops before the answer.
	b := setup(t, paysim.Config{}, payment.ClientConfig{})
	ch, err := b.client.Charge(t.Context(), req("ord-lost", "tok_lost_0001"))
	if err != nil || ch.Status != payment.StatusCaptured {
		t.Fatalf("got %+v, %v, want captured after a retry", ch, err)
	}
	if st := b.sim.Stats(); st.Captures != 1 || st.Duplicates != 1 || st.Requests != 2 {
		t.Fatalf("simulator: got %d captures %d duplicates %d requests, want 1 1 2", st.Captures, st.Duplicates, st.Requests)
	}
}

func TestHangIsCutByTheTimeout(t *testing.T) {
	t.Parallel()
	b := setup(t, paysim.Config{}, payment.ClientConfig{Timeout: 80 * time.Millisecond, MaxAttempts: 2})
	began := time.Now()
	_, err := b.client.Charge(t.Context(), req("ord-hang", "tok_hang_0001"))
	took := time.Since(began)
	if !errors.Is(err, payment.ErrTransient) {
		t.Fatalf("got %v, want ErrTransient", err)
	}
	if took < 160*time.Millisecond || took > 5*time.Second {
		t.Fatalf("took %s, want two attempts of 80ms each (at least 160ms, not hanging)", took)
	}
	if st := b.sim.Stats(); st.Requests != 2 || st.Captures != 0 {
		t.Fatalf("simulator: got %d requests %d captures, want 2 and 0", st.Requests, st.Captures)
	}
}

func TestCallerDeadlineDoesNotCountAgainstTheProvider(t *testing.T) {
	t.Parallel()
	b := setup(t, paysim.Config{}, payment.ClientConfig{Timeout: time.Second, MaxAttempts: 1, BreakerFailures: 1, BreakerOpenFor: 100 * time.Millisecond})
	giveUp := func() {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		_, err := b.client.Charge(ctx, req("ord-hang", "tok_hang_0001"))
		if !errors.Is(err, payment.ErrTransient) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want ErrTransient and context.DeadlineExceeded", err)
		}
	}
	// Closed: the caller giving up is not a failure of the provider.
	giveUp()
	if got := b.client.State(); got != "closed" {
		t.Fatalf("breaker: got %s, want closed (the caller gave up, the provider did not fail)", got)
	}
	// Half-open: a probe the caller abandons proves nothing either way.
	b.sim.SetDown(true)
	if _, err := b.client.Charge(t.Context(), req("ord-1", "tok_visa_4242")); !errors.Is(err, payment.ErrTransient) {
		t.Fatalf("during the outage: got %v, want ErrTransient", err)
	}
	b.sim.SetDown(false)
	waitState(t, b.client, "half-open")
	giveUp()
	if got := b.client.State(); got != "half-open" {
		t.Fatalf("after an abandoned probe: got %s, want half-open", got)
	}
	if _, err := b.client.Charge(t.Context(), req("ord-1", "tok_visa_4242")); err != nil {
		t.Fatalf("probe: %v", err)
	}
	if got := b.client.State(); got != "closed" {
		t.Fatalf("after a successful probe: got %s, want closed", got)
	}
}

func TestPermanentErrors(t *testing.T) {
	t.Parallel()
	b := setup(t, paysim.Config{}, payment.ClientConfig{BreakerFailures: 2})
	if _, err := b.client.Charge(t.Context(), req("ord-p", "tok_visa_4242")); err != nil {
		t.Fatalf("setup charge: %v", err)
	}
	before := b.sim.Stats().Requests

	tests := []struct {
		name      string
		call      func() error
		wantSent  int64
		wantInErr string
	}{
		{"card number instead of a token", func() error {
			_, err := b.client.Charge(t.Context(), req("ord-x", "4111111111111111"))
			return err
		}, 0, "token"},
		{"unknown method", func() error {
			r := req("ord-x", "tok_visa_4242")
			r.Method = "cash"
			_, err := b.client.Charge(t.Context(), r)
			return err
		}, 0, "method"},
		{"same order id, other amount", func() error {
			r := req("ord-p", "tok_visa_4242")
			r.AmountMinor++
			_, err := b.client.Charge(t.Context(), r)
			return err
		}, 1, "idempotency_key_reused"},
		{"refund of an order never charged", func() error {
			_, err := b.client.Refund(t.Context(), "ord-none", 100, "EUR")
			return err
		}, 1, "charge_not_found"},
		{"partial refund", func() error {
			_, err := b.client.Refund(t.Context(), "ord-p", 100, "EUR")
			return err
		}, 1, "amount_mismatch"},
	}
	for _, tt := range tests {
		err := tt.call()
		if !errors.Is(err, payment.ErrPermanent) || errors.Is(err, payment.ErrTransient) {
			t.Fatalf("%s: got %v, want ErrPermanent only", tt.name, err)
		}
		if !strings.Contains(err.Error(), tt.wantInErr) {
			t.Fatalf("%s: error %q, want it to mention %q", tt.name, err, tt.wantInErr)
		}
		after := b.sim.Stats().Requests
		if after-before != tt.wantSent {
			t.Fatalf("%s: got %d requests to the provider, want %d (permanent errors are not retried)", tt.name, after-before, tt.wantSent)
		}
		before = after
	}
	if got := b.client.State(); got != "closed" {
		t.Fatalf("breaker after permanent errors: got %s, want closed", got)
	}
	if st := b.sim.Stats(); st.Captures != 1 {
		t.Fatalf("simulator captures: got %d, want 1", st.Captures)
	}
}

func TestBreakerOpensFailsFastAndRecovers(t *testing.T) {
	t.Parallel()
	b := setup(t, paysim.Config{}, payment.ClientConfig{MaxAttempts: 1, BreakerFailures: 3, BreakerOpenFor: 200 * time.Millisecond})
	b.sim.SetDown(true)

	for i := range 3 {
		if got := b.client.State(); got != "closed" {
			t.Fatalf("before failure %d: got %s, want closed", i+1, got)
		}
		if _, err := b.client.Charge(t.Context(), req("ord-b", "tok_visa_4242")); !errors.Is(err, payment.ErrTransient) {
			t.Fatalf("failure %d: got %v, want ErrTransient", i+1, err)
		}
	}
	if got := b.client.State(); got != "open" {
		t.Fatalf("after 3 failures: got %s, want open", got)
	}
	if got := gauge(t, b.reg, "orderpipe_payment_breaker_state"); got != 2 {
		t.Fatalf("breaker gauge: got %v, want 2 (open)", got)
	}

	// Open: calls fail fast and never reach the provider.
	began := time.Now()
	_, err := b.client.Charge(t.Context(), req("ord-b", "tok_visa_4242"))
	if !errors.Is(err, payment.ErrTransient) || !strings.Contains(err.Error(), "circuit breaker open") {
		t.Fatalf("while open: got %v, want ErrTransient from the open breaker", err)
	}
	// No request reached the provider (checked below), so no per-attempt timeout or backoff was
	// paid: the failure is immediate. Only a gross bound here, so a busy machine cannot fail it.
	if took := time.Since(began); took > time.Second {
		t.Fatalf("while open: took %s, want a fast failure", took)
	}
	if st := b.sim.Stats(); st.Requests != 3 {
		t.Fatalf("simulator requests: got %d, want 3 (none while open)", st.Requests)
	}

	// After OpenFor it lets one probe through; a failed probe opens it again.
	waitState(t, b.client, "half-open")
	if got := gauge(t, b.reg, "orderpipe_payment_breaker_state"); got != 1 {
		t.Fatalf("breaker gauge: got %v, want 1 (half-open)", got)
	}
	if _, err := b.client.Charge(t.Context(), req("ord-b", "tok_visa_4242")); !errors.Is(err, payment.ErrTransient) {
		t.Fatalf("failed probe: got %v, want ErrTransient", err)
	}
	if got := b.client.State(); got != "open" {
		t.Fatalf("after a failed probe: got %s, want open", got)
	}

	// The provider recovers: the next probe succeeds and closes the breaker.
	b.sim.SetDown(false)
	waitState(t, b.client, "half-open")
	ch, err := b.client.Charge(t.Context(), req("ord-b", "tok_visa_4242"))
	if err != nil || ch.Status != payment.StatusCaptured {
		t.Fatalf("probe after recovery: got %+v, %v, want captured", ch, err)
	}
	if got := b.client.State(); got != "closed" {
		t.Fatalf("after a successful probe: got %s, want closed", got)
	}
	if got := gauge(t, b.reg, "orderpipe_payment_breaker_state"); got != 0 {
		t.Fatalf("breaker gauge: got %v, want 0 (closed)", got)
	}
	if st := b.sim.Stats(); st.Requests != 5 || st.Captures != 1 {
		t.Fatalf("simulator: got %d requests %d captures, want 5 and 1", st.Requests, st.Captures)
	}
}

func TestRefundIsIdempotentByOrderID(t *testing.T) {
	t.Parallel()
	b := setup(t, paysim.Config{Latency: time.Millisecond}, payment.ClientConfig{})
	if _, err := b.client.Charge(t.Context(), req("ord-r", "tok_visa_4242")); err != nil {
		t.Fatalf("charge: %v", err)
	}
	first, err := b.client.Refund(t.Context(), "ord-r", 12999, "EUR")
	if err != nil || first.Status != payment.StatusRefunded || first.ID == "" {
		t.Fatalf("first refund: got %+v, %v, want refunded with an id", first, err)
	}
	second, err := b.client.Refund(t.Context(), "ord-r", 12999, "EUR")
	if err != nil || second != first {
		t.Fatalf("second refund: got %+v, %v, want the first %+v", second, err, first)
	}
	if st := b.sim.Stats(); st.Refunds != 1 || st.RefundedMinor["EUR"] != 12999 {
		t.Fatalf("simulator: got %d refunds of %d EUR, want 1 of 12999", st.Refunds, st.RefundedMinor["EUR"])
	}
}

func TestMetricsRecordEveryOutcome(t *testing.T) {
	t.Parallel()
	b := setup(t, paysim.Config{}, payment.ClientConfig{MaxAttempts: 1})
	ctx := t.Context()
	_, _ = b.client.Charge(ctx, req("ord-1", "tok_visa_4242"))
	_, _ = b.client.Charge(ctx, req("ord-2", "tok_decline_0001"))
	_, _ = b.client.Charge(ctx, req("ord-3", "tok_fail_0001"))
	_, _ = b.client.Charge(ctx, req("ord-4", "not-a-token"))
	_, _ = b.client.Refund(ctx, "ord-1", 12999, "EUR")

	for _, tt := range []struct {
		op, outcome string
		want        float64
	}{
		{"charge", "captured", 1},
		{"charge", "declined", 1},
		{"charge", "transient", 1},
		{"charge", "permanent", 1},
		{"refund", "refunded", 1},
		{"refund", "permanent", 0},
	} {
		if got := counter(t, b.reg, "orderpipe_payment_requests_total", "op", tt.op, "outcome", tt.outcome); got != tt.want {
			t.Fatalf("requests_total{op=%s,outcome=%s}: got %v, want %v", tt.op, tt.outcome, got, tt.want)
		}
	}
	if got := histogramCount(t, b.reg, "orderpipe_payment_request_duration_seconds", "op", "charge"); got != 4 {
		t.Fatalf("charge duration observations: got %d, want 4", got)
	}
	if got := gauge(t, b.reg, "orderpipe_payment_breaker_state"); got != 0 {
		t.Fatalf("breaker gauge: got %v, want 0", got)
	}
}

func waitState(t *testing.T, c *payment.Client, want string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for c.State() != want {
		if time.Now().After(deadline) {
			t.Fatalf("breaker: got %s after 2s, want %s", c.State(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sample finds the sample of family name whose labels include every pair in labels (name,
// value, name, value...); it returns nil when there is none.
func sample(t *testing.T, reg *prometheus.Registry, name string, labels ...string) *dto.Metric {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					found = found || (lp.GetName() == labels[i] && lp.GetValue() == labels[i+1])
				}
				if !found {
					continue next
				}
			}
			return m
		}
	}
	return nil
}

func counter(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	return sample(t, reg, name, labels...).GetCounter().GetValue()
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	m := sample(t, reg, name)
	if m == nil {
		t.Fatalf("metric %s is not registered", name)
	}
	return m.GetGauge().GetValue()
}

func histogramCount(t *testing.T, reg *prometheus.Registry, name string, labels ...string) uint64 {
	t.Helper()
	return sample(t, reg, name, labels...).GetHistogram().GetSampleCount()
}
