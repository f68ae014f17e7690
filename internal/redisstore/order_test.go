package redisstore_test

import (
	"bytes"
	"testing"
	"time"
)

func TestPendingOrder(t *testing.T) {
	t.Parallel()
	b := setup(t)
	doc := []byte(`{"order_id":"o1","status":"pending"}`)

	if _, ok, err := b.store.PendingOrder(t.Context(), "o1"); err != nil || ok {
		t.Fatalf("PendingOrder before put: got ok=%v err=%v, want ok=false err=nil", ok, err)
	}
	if err := b.store.PutPendingOrder(t.Context(), "o1", doc, time.Minute); err != nil {
		t.Fatalf("PutPendingOrder: %v", err)
	}
	got, ok, err := b.store.PendingOrder(t.Context(), "o1")
	if err != nil || !ok {
		t.Fatalf("PendingOrder: got ok=%v err=%v, want ok=true err=nil", ok, err)
	}
	if !bytes.Equal(got, doc) {
		t.Fatalf("PendingOrder: got %s, want %s", got, doc)
	}
	if d := pttl(t, b, b.prefix+"ord:o1"); d <= 0 || d > time.Minute {
		t.Fatalf("TTL: got %s, want within (0, 1m]", d)
	}
	if err := b.store.DeletePendingOrder(t.Context(), "o1"); err != nil {
		t.Fatalf("DeletePendingOrder: %v", err)
	}
	if _, ok, err := b.store.PendingOrder(t.Context(), "o1"); err != nil || ok {
		t.Fatalf("PendingOrder after delete: got ok=%v err=%v, want ok=false err=nil", ok, err)
	}
}
