package redisstore_test

import (
	"testing"
	"time"
)

func TestAllowRefusesAfterBurst(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const burst = 5
	// One request per second refills: the test runs well within a second of
	// the burst, so no extra request becomes allowed meanwhile.
	for i := range burst {
		r, err := b.store.Allow(t.Context(), "client-1", 1, burst)
		if err != nil {
			t.Fatalf("Allow %d: %v", i, err)
		}
		if !r.Allowed || r.RetryAfter != 0 || r.Remaining != burst-1-i || r.ResetAfter <= time.Duration(i)*time.Second {
			t.Fatalf("Allow %d: got %+v, want allowed, no retry, %d remaining, reset after more than %ds", i, r, burst-1-i, i)
		}
	}
	r, err := b.store.Allow(t.Context(), "client-1", 1, burst)
	if err != nil {
		t.Fatalf("Allow after burst: %v", err)
	}
	if r.Allowed || r.RetryAfter <= 0 || r.RetryAfter > time.Second || r.Remaining != 0 {
		t.Fatalf("Allow after burst: got %+v, want refused, retryAfter in (0, 1s], none remaining", r)
	}

	// Another scope has its own bucket.
	if r, err := b.store.Allow(t.Context(), "client-2", 1, burst); err != nil || !r.Allowed {
		t.Fatalf("Allow other scope: got %+v, %v, want allowed", r, err)
	}
}
