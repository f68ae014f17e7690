package paysim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/orderpipe/orderpipe/internal/paysim"
)

type sim struct {
	srv *paysim.Server
	url string
	hc  *http.Client
}

// start serves a simulator over loopback HTTP. The client opens a fresh connection per request,
// so a dropped connection reaches the test instead of being replayed by the transport.
func start(t *testing.T, cfg paysim.Config) sim {
	t.Helper()
	s := paysim.New(cfg)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return sim{srv: s, url: ts.URL, hc: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}}
}

type answer struct {
	status   int
	replayed bool
	body     map[string]any
}

func (a answer) str(field string) string {
	s, _ := a.body[field].(string)
	return s
}

func (a answer) errorCode() string {
	e, _ := a.body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

// post sends a JSON body with an Idempotency-Key (when key is not empty). A transport error
// (a dropped connection, a client timeout) is returned, not fatal.
func (s sim) post(t *testing.T, ctx context.Context, path, key string, body any) (answer, error) {
	t.Helper()
	raw, err := json.Marshal(body)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url+path, bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, replayed: resp.Header.Get("Idempotent-Replayed") == "true"}
	if err := json.NewDecoder(resp.Body).Decode(&a.body); err != nil {
		t.Fatalf("decode %s answer %d: %v", path, resp.StatusCode, err)
	}
	return a, nil
}

func (s sim) mustPost(t *testing.T, path, key string, body any) answer {
	t.Helper()
	a, err := s.post(t, t.Context(), path, key, body)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	return a
}

func (s sim) get(t *testing.T, path string, out any) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.url+path, nil)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("decode GET %s: %v", path, err)
	}
	return resp.StatusCode
}

func charge(order, token string, amount int64) map[string]any {
	return map[string]any{"order_id": order, "token": token, "method": "card", "amount_minor": amount, "currency": "EUR"}
}

func TestChargeIsIdempotentByKey(t *testing.T) {
	t.Parallel()
	s := start(t, paysim.Config{})

	first := s.mustPost(t, "/v1/charges", "ord-1", charge("ord-1", "tok_visa_4242", 12999))
	if first.status != http.StatusCreated || first.replayed {
		t.Fatalf("first charge: got %d replayed=%v, want 201 not replayed", first.status, first.replayed)
	}
	if first.str("status") != "captured" || !strings.HasPrefix(first.str("id"), "ch_") {
		t.Fatalf("first charge: got %v, want captured with a ch_ id", first.body)
	}
	second := s.mustPost(t, "/v1/charges", "ord-1", charge("ord-1", "tok_visa_4242", 12999))
	if second.status != http.StatusOK || !second.replayed {
		t.Fatalf("second charge: got %d replayed=%v, want 200 replayed", second.status, second.replayed)
	}
	if second.str("id") != first.str("id") || second.str("status") != "captured" {
		t.Fatalf("second charge: got id %s status %s, want id %s captured", second.str("id"), second.str("status"), first.str("id"))
	}

	st := s.srv.Stats()
	if st.Captures != 1 || st.Duplicates != 1 || st.CapturedOrders != 1 || st.CapturedMinor["EUR"] != 12999 {
		t.Fatalf("stats: got captures %d duplicates %d orders %d EUR %d, want 1 1 1 12999",
			st.Captures, st.Duplicates, st.CapturedOrders, st.CapturedMinor["EUR"])
	}
	var list struct{ Charges []paysim.Charge }
	if code := s.get(t, "/v1/charges?order_id=ord-1", &list); code != http.StatusOK || len(list.Charges) != 1 {
		t.Fatalf("GET /v1/charges: got %d with %d charges, want 200 with 1", code, len(list.Charges))
	}
	if got := list.Charges[0]; got.ID != first.str("id") || got.AmountMinor != 12999 || got.Refunded {
		t.Fatalf("listed charge: got %+v, want id %s, 12999, not refunded", got, first.str("id"))
	}
}

func TestDifferentKeysForOneOrderAreReportedAsDoubleCapture(t *testing.T) {
	t.Parallel()
	s := start(t, paysim.Config{})
	// A client bug: two idempotency keys for the same order. The provider captures twice and
	// the stats say so, which is what the load checker looks for.
	s.mustPost(t, "/v1/charges", "key-a", charge("ord-2", "tok_visa_4242", 500))
	s.mustPost(t, "/v1/charges", "key-b", charge("ord-2", "tok_visa_4242", 500))
	st := s.srv.Stats()
	if st.Captures != 2 || !slices.Equal(st.DoubleCaptured, []string{"ord-2"}) {
		t.Fatalf("stats: got captures %d double %v, want 2 [ord-2]", st.Captures, st.DoubleCaptured)
	}
}

func TestSameKeyWithOtherAmountIsConflict(t *testing.T) {
	t.Parallel()
	s := start(t, paysim.Config{})
	s.mustPost(t, "/v1/charges", "ord-3", charge("ord-3", "tok_visa_4242", 1000))
	a := s.mustPost(t, "/v1/charges", "ord-3", charge("ord-3", "tok_visa_4242", 2000))
	if a.status != http.StatusConflict || a.errorCode() != "idempotency_key_reused" {
		t.Fatalf("got %d %v, want 409 idempotency_key_reused", a.status, a.body)
	}
	st := s.srv.Stats()
	if st.Captures != 1 || st.Conflicts != 1 || st.CapturedMinor["EUR"] != 1000 {
		t.Fatalf("stats: got captures %d conflicts %d EUR %d, want 1 1 1000", st.Captures, st.Conflicts, st.CapturedMinor["EUR"])
	}
}

func TestSpecialTokens(t *testing.T) {
	t.Parallel()
	tests := []struct {
		token       string
		wantCode    int
		wantStatus  string
		wantDecline string
	}{
		{"tok_decline_0001", http.StatusCreated, "declined", "card_declined"},
		{"tok_insufficient_01", http.StatusCreated, "declined", "insufficient_funds"},
		{"tok_expired_0001", http.StatusCreated, "declined", "expired_token"},
		{"tok_visa_4242", http.StatusCreated, "captured", ""},
		{"tok_fail_0001", http.StatusServiceUnavailable, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.token, func(t *testing.T) {
			t.Parallel()
			// DeclineRate 0 and FaultRate 0: only the token decides.
			s := start(t, paysim.Config{})
			for i := range 2 {
				a := s.mustPost(t, "/v1/charges", "ord-"+tt.token, charge("ord-"+tt.token, tt.token, 100))
				if i == 1 && tt.wantCode == http.StatusCreated {
					tt.wantCode = http.StatusOK // the replay
				}
				if a.status != tt.wantCode || a.str("status") != tt.wantStatus || a.str("decline_code") != tt.wantDecline {
					t.Fatalf("attempt %d: got %d %q %q, want %d %q %q", i+1, a.status, a.str("status"), a.str("decline_code"),
						tt.wantCode, tt.wantStatus, tt.wantDecline)
				}
			}
			st := s.srv.Stats()
			wantCaptures := int64(0)
			if tt.wantStatus == "captured" {
				wantCaptures = 1
			}
			if st.Captures != wantCaptures {
				t.Fatalf("captures: got %d, want %d", st.Captures, wantCaptures)
			}
		})
	}
}

func TestSlowTokenTakesThreeTimesTheLatency(t *testing.T) {
	t.Parallel()
	s := start(t, paysim.Config{Latency: 40 * time.Millisecond})
	for _, tt := range []struct {
		token    string
		min, max time.Duration
	}{
		// Lower bounds carry the meaning (latency applied, three times for slow tokens); the
		// upper bounds only catch a hang, so a busy machine cannot fail the test.
		{"tok_visa_4242", 40 * time.Millisecond, 5 * time.Second},
		{"tok_slow_4242", 120 * time.Millisecond, 5 * time.Second},
	} {
		began := time.Now()
		a := s.mustPost(t, "/v1/charges", "ord-"+tt.token, charge("ord-"+tt.token, tt.token, 100))
		took := time.Since(began)
		if a.status != http.StatusCreated || took < tt.min || took > tt.max {
			t.Fatalf("%s: got %d after %s, want 201 after %s..%s", tt.token, a.status, took, tt.min, tt.max)
		}
	}
}

func TestHangTokenWaitsForTheClientAndChargesNothing(t *testing.T) {
	t.Parallel()
	s := start(t, paysim.Config{})
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	began := time.Now()
	_, err := s.post(t, ctx, "/v1/charges", "ord-hang", charge("ord-hang", "tok_hang_0001", 100))
	if err == nil || time.Since(began) < 100*time.Millisecond {
		t.Fatalf("got err %v after %s, want the client's timeout after 100ms", err, time.Since(began))
	}
	waitFor(t, func() bool { return s.srv.Stats().Abandoned == 1 }, "the server to notice the client left")
	if st := s.srv.Stats(); st.Captures != 0 || st.Declines != 0 {
		t.Fatalf("got %d captures %d declines, want nothing recorded", st.Captures, st.Declines)
	}
}

func TestLostTokenCapturesThenDropsTheFirstAnswer(t *testing.T) {
	t.Parallel()
	s := start(t, paysim.Config{})
	body := charge("ord-lost", "tok_lost_0001", 700)
	if _, err := s.post(t, t.Context(), "/v1/charges", "ord-lost", body); err == nil {
		t.Fatalf("first attempt: got an answer, want a dropped connection")
	}
	if st := s.srv.Stats(); st.Captures != 1 {
		t.Fatalf("after the lost answer: got %d captures, want 1 (captured before the drop)", st.Captures)
	}
	a := s.mustPost(t, "/v1/charges", "ord-lost", body)
	if a.status != http.StatusOK || !a.replayed || a.str("status") != "captured" {
		t.Fatalf("retry: got %d replayed=%v %v, want 200 replayed captured", a.status, a.replayed, a.body)
	}
	if st := s.srv.Stats(); st.Captures != 1 || st.Duplicates != 1 || len(st.DoubleCaptured) != 0 {
		t.Fatalf("stats: got captures %d duplicates %d double %v, want 1 1 []", st.Captures, st.Duplicates, st.DoubleCaptured)
	}
}

func TestOutage(t *testing.T) {
	t.Parallel()
	s := start(t, paysim.Config{})
	var out map[string]string
	toggle := func(down bool) {
		t.Helper()
		a := s.mustPost(t, "/v1/admin/outage", "", map[string]bool{"down": down})
		if a.status != http.StatusOK || a.body["down"] != down {
			t.Fatalf("outage %v: got %d %v", down, a.status, a.body)
		}
	}

	toggle(true)
	if code := s.get(t, "/healthz", &out); code != http.StatusServiceUnavailable {
		t.Fatalf("healthz while down: got %d, want 503", code)
	}
	for _, token := range []string{"tok_visa_4242", "tok_decline_0001"} {
		a := s.mustPost(t, "/v1/charges", "ord-"+token, charge("ord-"+token, token, 100))
		if a.status != http.StatusServiceUnavailable || a.errorCode() != "provider_unavailable" {
			t.Fatalf("%s while down: got %d %v, want 503 provider_unavailable", token, a.status, a.body)
		}
	}
	if st := s.srv.Stats(); st.Captures != 0 || st.Declines != 0 || st.Faults != 2 {
		t.Fatalf("while down: got captures %d declines %d faults %d, want 0 0 2", st.Captures, st.Declines, st.Faults)
	}

	toggle(false)
	if code := s.get(t, "/healthz", &out); code != http.StatusOK {
		t.Fatalf("healthz after the outage: got %d, want 200", code)
	}
	a := s.mustPost(t, "/v1/charges", "ord-tok_visa_4242", charge("ord-tok_visa_4242", "tok_visa_4242", 100))
	if a.status != http.StatusCreated {
		t.Fatalf("after the outage: got %d, want 201 (the faulted attempt charged nothing)", a.status)
	}

	s.srv.SetDown(true)
	a = s.mustPost(t, "/v1/charges", "ord-9", charge("ord-9", "tok_visa_4242", 100))
	if a.status != http.StatusServiceUnavailable {
		t.Fatalf("after SetDown(true): got %d, want 503", a.status)
	}
}

func TestRefund(t *testing.T) {
	t.Parallel()
	s := start(t, paysim.Config{})
	ch := s.mustPost(t, "/v1/charges", "ord-r", charge("ord-r", "tok_visa_4242", 4200))
	s.mustPost(t, "/v1/charges", "ord-d", charge("ord-d", "tok_decline_0001", 4200))

	tests := []struct {
		name     string
		key      string
		body     map[string]any
		wantCode int
		wantErr  string
	}{
		{"full refund", "ord-r", map[string]any{"order_id": "ord-r", "amount_minor": 4200, "currency": "EUR"}, http.StatusCreated, ""},
		{"replay", "ord-r", map[string]any{"order_id": "ord-r", "amount_minor": 4200, "currency": "EUR"}, http.StatusOK, ""},
		{"partial", "ord-r-part", map[string]any{"order_id": "ord-r", "amount_minor": 100, "currency": "EUR"}, http.StatusUnprocessableEntity, "amount_mismatch"},
		{"declined charge", "ord-d", map[string]any{"order_id": "ord-d", "amount_minor": 4200, "currency": "EUR"}, http.StatusNotFound, "charge_not_found"},
		{"unknown order", "ord-x", map[string]any{"order_id": "ord-x", "amount_minor": 4200, "currency": "EUR"}, http.StatusNotFound, "charge_not_found"},
		{"no key", "", map[string]any{"order_id": "ord-r", "amount_minor": 4200, "currency": "EUR"}, http.StatusBadRequest, "invalid_request"},
	}
	var refundID string
	for _, tt := range tests { // in order: the replay depends on the first refund
		a := s.mustPost(t, "/v1/refunds", tt.key, tt.body)
		if a.status != tt.wantCode || a.errorCode() != tt.wantErr {
			t.Fatalf("%s: got %d %v, want %d %q", tt.name, a.status, a.body, tt.wantCode, tt.wantErr)
		}
		if tt.wantErr != "" {
			continue
		}
		if refundID == "" {
			refundID = a.str("id")
		}
		if a.str("id") != refundID || a.str("status") != "refunded" || a.str("charge_id") != ch.str("id") {
			t.Fatalf("%s: got %v, want refund %s of charge %s", tt.name, a.body, refundID, ch.str("id"))
		}
	}
	st := s.srv.Stats()
	if st.Refunds != 1 || st.RefundedMinor["EUR"] != 4200 || st.Duplicates != 1 {
		t.Fatalf("stats: got refunds %d EUR %d duplicates %d, want 1 4200 1", st.Refunds, st.RefundedMinor["EUR"], st.Duplicates)
	}
}

func TestInvalidChargesAreRejectedAndRecordNothing(t *testing.T) {
	t.Parallel()
	s := start(t, paysim.Config{})
	tests := []struct {
		name string
		key  string
		body any
	}{
		{"no idempotency key", "", charge("o", "tok_visa_4242", 100)},
		{"card number as token", "o", charge("o", "4111111111111111", 100)},
		{"token with spaces", "o", charge("o", "tok_visa 4242", 100)},
		{"zero amount", "o", charge("o", "tok_visa_4242", 0)},
		{"unknown method", "o", map[string]any{"token": "tok_visa_4242", "method": "cash", "amount_minor": 1, "currency": "EUR"}},
		{"lowercase currency", "o", map[string]any{"token": "tok_visa_4242", "method": "card", "amount_minor": 1, "currency": "eur"}},
		{"unknown field", "o", map[string]any{"token": "tok_visa_4242", "method": "card", "amount_minor": 1, "currency": "EUR", "pan": "4111"}},
	}
	for _, tt := range tests {
		a := s.mustPost(t, "/v1/charges", tt.key, tt.body)
		if a.status != http.StatusBadRequest || a.errorCode() != "invalid_request" {
			t.Fatalf("%s: got %d %v, want 400 invalid_request", tt.name, a.status, a.body)
		}
	}
	if st := s.srv.Stats(); st.Captures+st.Declines != 0 || st.Rejected != int64(len(tests)) {
		t.Fatalf("stats: got %d charges %d rejected, want 0 and %d", st.Captures+st.Declines, st.Rejected, len(tests))
	}
}

// outcomes charges n orders, retrying each until it is not faulted, and returns each order's
// final status and the number of faulted attempts.
func outcomes(t *testing.T, s sim, n int) ([]string, int) {
	t.Helper()
	var out []string
	faults := 0
	for i := range n {
		key := fmt.Sprintf("ord-%04d", i)
		for attempt := 1; ; attempt++ {
			if attempt > 20 {
				t.Fatalf("%s: still faulted after 20 attempts", key)
			}
			a, err := s.post(t, t.Context(), "/v1/charges", key, charge(key, "tok_visa_4242", 100))
			if err != nil || a.status >= 500 {
				faults++
				continue
			}
			out = append(out, a.str("status")+"/"+a.str("decline_code"))
			break
		}
	}
	return out, faults
}

func TestRatesAreHonouredAndDeterministic(t *testing.T) {
	t.Parallel()
	const n = 300
	cfg := paysim.Config{DeclineRate: 0.2, FaultRate: 0.1, Seed: 42}
	a := start(t, cfg)
	first, faults := outcomes(t, a, n)

	declines := 0
	for _, o := range first {
		if strings.HasPrefix(o, "declined/") {
			declines++
		}
	}
	if declines < n*12/100 || declines > n*28/100 {
		t.Fatalf("declines: got %d of %d, want about 20%%", declines, n)
	}
	attempts := n + faults
	if faults < attempts*5/100 || faults > attempts*15/100 {
		t.Fatalf("faults: got %d of %d attempts, want about 10%%", faults, attempts)
	}
	st := a.srv.Stats()
	if st.Declines != int64(declines) || st.Captures != int64(n-declines) || st.Faults != int64(faults) {
		t.Fatalf("stats: got declines %d captures %d faults %d, want %d %d %d", st.Declines, st.Captures, st.Faults, declines, n-declines, faults)
	}

	again, faultsAgain := outcomes(t, start(t, cfg), n)
	if !slices.Equal(first, again) || faults != faultsAgain {
		t.Fatalf("same seed: got different outcomes (faults %d vs %d), want identical", faults, faultsAgain)
	}
	cfg.Seed = 43
	other, _ := outcomes(t, start(t, cfg), n)
	if slices.Equal(first, other) {
		t.Fatalf("another seed: got identical outcomes, want different ones")
	}
}

func TestRunServesUntilTheContextEnds(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()

	s := paysim.New(paysim.Config{Latency: time.Millisecond})
	ctx, cancel := context.WithCancel(t.Context())
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, addr, &out) }()

	c := sim{srv: s, url: "http://" + addr, hc: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}}
	waitFor(t, func() bool {
		resp, err := c.hc.Get(c.url + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "paysim to listen")
	// A hanging request must not hold up the shutdown.
	hung := make(chan error, 1)
	go func() {
		body := `{"token":"tok_hang_0001","method":"card","amount_minor":100,"currency":"EUR"}`
		req, _ := http.NewRequest(http.MethodPost, c.url+"/v1/charges", strings.NewReader(body))
		req.Header.Set("Idempotency-Key", "ord-h")
		resp, err := c.hc.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		hung <- err
	}()
	waitFor(t, func() bool { return s.Stats().Requests == 1 }, "the hanging request to arrive")
	c.mustPost(t, "/v1/charges", "ord-1", charge("ord-1", "tok_visa_4242", 100))

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: got %v, want nil", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatalf("Run did not return within 3s of the context ending")
	}
	<-hung
	if got := out.String(); !strings.Contains(got, "listening on http://"+addr) || !strings.Contains(got, "1 captures") {
		t.Fatalf("output: got %q, want the address and the final counters", got)
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
