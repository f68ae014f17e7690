package consumer_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/consumer"
	"github.com/orderpipe/orderpipe/internal/event"
)

// Stock-event mode: a transient failure holds its partition (and only it) until it heals, without
// retry topics; a permanent one is dead-lettered and its partition moves on.
func TestInPlaceOnlyHoldsOnlyTheFailingPartition(t *testing.T) {
	t.Parallel()
	const group = "stock"
	b := setup(t, "stock", event.DeadLetterTopic(group)) // no retry topics: they must not be needed
	var p0, p1 []*kgo.Record
	for i := range 8 {
		p0 = append(p0, rec("stock", 0, fmt.Sprintf("s0-%d", i)))
		p1 = append(p1, rec("stock", 1, fmt.Sprintf("s1-%d", i)))
	}
	b.produce(t, append(p0, p1...)...)

	healAt := time.Now().Add(1500 * time.Millisecond)
	h := newRecorder(func(key string, _ int) error {
		switch {
		case key == "s0-3" && time.Now().Before(healAt):
			return consumer.Transient(errDown)
		case key == "s1-2":
			return consumer.Permanent(errors.New("unknown warehouse"))
		}
		return nil
	})
	b.start(t, consumer.Config{
		Group: group, Topics: []string{"stock"}, StartAt: consumer.StartEarliest,
		InPlaceOnly: true, RetryInPlaceFor: 100 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
	}, h)

	// While s0-3 fails: partition 0 is committed up to it, never past it; partition 1 went on
	// past its poison record; partition 2 keeps flowing.
	h.waitDone(t, 10*time.Second, p0[:3])
	b.waitCommitted(t, group, "stock", map[int32]int64{0: 3, 1: 8})
	p2 := b.produce(t, rec("stock", 2, "s2-0"), rec("stock", 2, "s2-1"))
	h.waitDone(t, 5*time.Second, p2)
	if time.Now().After(healAt) {
		t.Fatalf("test too slow: partition 2 was checked after s0-3 healed")
	}
	if got := b.committed(t, group, "stock")[0]; got != 3 {
		t.Fatalf("partition 0 committed while s0-3 fails: got %d, want 3", got)
	}

	h.waitDone(t, 10*time.Second, p0)
	b.waitCommitted(t, group, "stock", map[int32]int64{0: 8, 1: 8, 2: 2})

	if n := h.count("s0-3"); n < 4 {
		t.Fatalf("s0-3 deliveries: got %d, want several (retried in place with backoff)", n)
	}
	// Every later record of partition 0 was delivered again after s0-3 succeeded.
	var healed time.Time
	lastDone := map[string]time.Time{}
	for _, d := range h.done() {
		if d.key == "s0-3" && healed.IsZero() {
			healed = d.at
		}
		lastDone[d.key] = d.at
	}
	for _, r := range p0[4:] {
		if !lastDone[string(r.Key)].After(healed) && !lastDone[string(r.Key)].Equal(healed) {
			t.Fatalf("%s last handled at %s, before s0-3 succeeded at %s", r.Key, lastDone[string(r.Key)], healed)
		}
	}
	dlq := b.read(t, event.DeadLetterTopic(group))
	if len(dlq) != 1 || string(dlq[0].Key) != "s1-2" {
		t.Fatalf("dead letters: got %d, want s1-2 only", len(dlq))
	}
	d, err := consumer.ParseDeadLetter(dlq[0])
	if err != nil {
		t.Fatalf("parse dead letter: %v", err)
	}
	if d.Class != consumer.ClassPermanent || d.Attempts != 1 || d.Partition != 1 || d.Offset != 2 {
		t.Fatalf("dead letter: got %+v, want permanent, 1 attempt, stock/1@2", d)
	}
}
