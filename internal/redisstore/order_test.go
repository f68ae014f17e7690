package redisstore_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/orderpipe/orderpipe/internal/redisstore"
)

// The pending snapshot of an accepted order is written in the same round trip as its idempotent
// answer, with its own TTL, and read back by PendingOrder.
func TestPendingSnapshotWithTheIdempotentAnswer(t *testing.T) {
	t.Parallel()
	b := setup(t)
	doc := []byte(`{"order_id":"o1","status":"pending"}`)
	if _, ok, err := b.store.PendingOrder(t.Context(), "o1"); err != nil || ok {
		t.Fatalf("PendingOrder before: got ok=%v err=%v, want ok=false err=nil", ok, err)
	}
	now := time.Now()
	begin, err := b.store.BeginIdempotent(t.Context(), "key1", "idem1", "hash", "o1", time.Minute, time.Hour, now)
	if err != nil || begin.Outcome != redisstore.IdemNew {
		t.Fatalf("begin: %+v %v", begin, err)
	}
	if err := b.store.FinishIdempotent(t.Context(), "key1", "idem1", 202, "application/json", doc,
		redisstore.Snapshot{OrderID: "o1", Doc: doc, TTL: time.Minute}); err != nil {
		t.Fatalf("FinishIdempotent: %v", err)
	}
	got, ok, err := b.store.PendingOrder(t.Context(), "o1")
	if err != nil || !ok || !bytes.Equal(got, doc) {
		t.Fatalf("PendingOrder: got %s ok=%v err=%v, want %s", got, ok, err, doc)
	}
	if d := pttl(t, b, b.prefix+"ord:o1"); d <= 0 || d > time.Minute {
		t.Fatalf("TTL: got %s, want within (0, 1m]", d)
	}
	replay, err := b.store.BeginIdempotent(t.Context(), "key1", "idem1", "hash", "o2", time.Minute, time.Hour, now)
	if err != nil || replay.Outcome != redisstore.IdemReplay || replay.Status != 202 || !bytes.Equal(replay.Body, doc) {
		t.Fatalf("replay after finish: %+v %v", replay, err)
	}
}
