package event_test

import (
	"testing"

	"github.com/orderpipe/orderpipe/internal/event"
)

func TestIdempotencyFingerprint(t *testing.T) {
	t.Parallel()
	a := event.IdempotencyFingerprint("k_checkout01", "8d2f5e1c-7b3a-4f60-9c1e-2a4b6d8f0e13")
	// As in the frozen example schemas/testdata/order-placed/v1-idempotency-fingerprint.json.
	if want := "44a6cdcf676181bf3b413179f3fd969aaf1b5d6ebae2698bf9eb4d499b4d3674"; a != want {
		t.Fatalf("fingerprint: got %s, want %s (SHA-256 of key id, NUL, key)", a, want)
	}
	if b := event.IdempotencyFingerprint("k_checkout01", "8d2f5e1c-7b3a-4f60-9c1e-2a4b6d8f0e13"); b != a {
		t.Fatalf("fingerprint not stable: %s then %s", a, b)
	}
	// Scoped to the API key, and the separator keeps (key id, key) pairs apart.
	for _, other := range [][2]string{{"k_other", "8d2f5e1c-7b3a-4f60-9c1e-2a4b6d8f0e13"}, {"k_checkout0", "18d2f5e1c-7b3a-4f60-9c1e-2a4b6d8f0e13"}} {
		if event.IdempotencyFingerprint(other[0], other[1]) == a {
			t.Errorf("fingerprint of %q/%q equals that of k_checkout01's key", other[0], other[1])
		}
	}
}
