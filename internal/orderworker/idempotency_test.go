package orderworker_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/orderpipe/orderpipe/internal/paysim"
	"github.com/orderpipe/orderpipe/internal/redisstore"
)

// chaos-redis, reduced: a buyer is answered 202, Redis then loses the idempotency record, and the
// buyer retries with the same Idempotency-Key and body. The api, knowing nothing, accepts a second
// order; order-worker finds the key's fingerprint claimed in Postgres by the first order and
// cancels the second as duplicate: one charge, one confirmed order, nothing held (I3).
func TestRetryAfterRedisLostTheKeyIsCancelledAsDuplicate(t *testing.T) {
	t.Parallel()
	s := setup(t, paysim.Config{Latency: time.Millisecond, Seed: 4}, stockAll(50))
	body := orderJSON("tok_card_retry01", "standard", skus[0], 2)
	post := func() string {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, s.API.URL+"/v1/orders", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+s.Token)
		req.Header.Set("Idempotency-Key", "retry-after-redis-loss-1")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		rb, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST: %d %s, want 202", resp.StatusCode, rb)
		}
		var v struct {
			OrderID string `json:"order_id"`
		}
		if err := json.Unmarshal(rb, &v); err != nil {
			t.Fatal(err)
		}
		return v.OrderID
	}
	s.Worker(t, nil)
	first := post()
	s.WaitDecided(t, 1, 30*time.Second)
	// Redis forgets every idempotency record (as after a restart without persistence).
	if err := redisstore.DeleteKeys(t.Context(), s.RDB, s.Prefix+"idem:*"); err != nil {
		t.Fatal(err)
	}
	second := post()
	if second == first {
		t.Fatalf("the retry got the first order %s: Redis still knew the key, the test proves nothing", first)
	}
	s.WaitDecided(t, 2, 30*time.Second)
	s.waitSettled(t, 30*time.Second)

	status := func(id string) string {
		var st string
		if err := s.Pool.QueryRow(t.Context(), `SELECT status || coalesce('/' || cancel_reason, '') FROM orders WHERE id = $1`, id).Scan(&st); err != nil {
			t.Fatalf("order %s: %v", id, err)
		}
		return st
	}
	if got := status(first); got != "confirmed" {
		t.Errorf("first order %s: %s, want confirmed", first, got)
	}
	if got := status(second); got != "cancelled/duplicate" {
		t.Errorf("second order %s: %s, want cancelled/duplicate", second, got)
	}
	if st := s.Sim.Stats(); st.Captures != 1 || len(st.DoubleCaptured) != 0 {
		t.Errorf("simulator: %d captures (double %v), want 1: the key was charged twice", st.Captures, st.DoubleCaptured)
	}
	var payments int
	if err := s.Pool.QueryRow(t.Context(), `SELECT count(*) FROM payments WHERE order_id = $1`, second).Scan(&payments); err != nil || payments != 0 {
		t.Errorf("payments of the duplicate: %d (%v), want none", payments, err)
	}
	var owner string
	if err := s.Pool.QueryRow(t.Context(), `SELECT order_id::text FROM idempotency_claims`).Scan(&owner); err != nil || owner != first {
		t.Errorf("idempotency claim owner %q (%v), want the first order %s", owner, err, first)
	}
	r, err := s.Store.Availability(t.Context(), skus[0])
	if err != nil {
		t.Fatal(err)
	}
	if r.Held != 0 || r.ATP != 48 {
		t.Errorf("%s: atp %d held %d, want 48 and 0 (the duplicate's hold released)", skus[0], r.ATP, r.Held)
	}
}
