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
		ok, retry, err := b.store.Allow(t.Context(), "client-1", 1, burst)
		if err != nil {
			t.Fatalf("Allow %d: %v", i, err)
		}
		if !ok || retry != 0 {
			t.Fatalf("Allow %d: got ok=%v retryAfter=%s, want ok=true retryAfter=0", i, ok, retry)
		}
	}
	ok, retry, err := b.store.Allow(t.Context(), "client-1", 1, burst)
	if err != nil {
		t.Fatalf("Allow after burst: %v", err)
	}
	if ok || retry <= 0 || retry > time.Second {
		t.Fatalf("Allow after burst: got ok=%v retryAfter=%s, want ok=false retryAfter in (0, 1s]", ok, retry)
	}

	// Another scope has its own bucket.
	if ok, _, err := b.store.Allow(t.Context(), "client-2", 1, burst); err != nil || !ok {
		t.Fatalf("Allow other scope: got ok=%v err=%v, want ok=true", ok, err)
	}
}
