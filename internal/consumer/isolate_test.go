package consumer_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/consumer"
	"github.com/orderpipe/orderpipe/internal/event"
)

// unitHandler works a batch as one unit, like a handler that writes a batch in one
// transaction: one bad record fails the whole call with one error, given to every record.
type unitHandler struct {
	mu    sync.Mutex
	done  map[string]int // successful handlings per key
	calls int
}

func (h *unitHandler) Handle(_ context.Context, recs []*kgo.Record) []error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls++
	for _, r := range recs {
		if string(r.Value) == "poison" {
			err := consumer.Permanent(fmt.Errorf("write batch of %d: value out of range", len(recs)))
			errs := make([]error, len(recs))
			for i := range errs {
				errs[i] = err
			}
			return errs
		}
	}
	for _, r := range recs {
		h.done[string(r.Key)]++
	}
	return nil
}

func (h *unitHandler) doneCopy() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]int, len(h.done))
	for k, v := range h.done {
		out[k] = v
	}
	return out
}

// A handler that cannot tell which record of its batch failed gives the batch's permanent error
// to every record. The loop isolates the poison records (it calls the handler again on halves)
// and dead-letters only them, at once; every other record of the batch is done, exactly once.
func TestPermanentBatchFailureIsolatesThePoisonRecords(t *testing.T) {
	t.Parallel()
	const group = "isolate"
	b := setup(t, "src", event.RetryTopic(group, 1), event.DeadLetterTopic(group))
	var recs []*kgo.Record
	poison := map[string]bool{}
	for i := range 150 {
		for p := range int32(3) {
			r := rec("src", p, fmt.Sprintf("k-%d-%d", p, i))
			if (p == 0 && i == 75) || (p == 2 && i == 3) {
				r.Value = []byte("poison")
				poison[string(r.Key)] = true
			}
			recs = append(recs, r)
		}
	}
	b.produce(t, recs...)
	h := &unitHandler{done: map[string]int{}}
	reg := prometheus.NewRegistry()
	b.start(t, consumer.Config{
		Group: group, Topics: []string{"src"}, StartAt: consumer.StartEarliest, MaxPollRecords: 500,
		RetryInPlaceFor: time.Second, RetryTiers: []time.Duration{time.Hour}, Registerer: reg,
	}, h)
	b.waitCommitted(t, group, "src", map[int32]int64{0: 150, 1: 150, 2: 150})

	done := h.doneCopy()
	for _, r := range recs {
		k := string(r.Key)
		want := 1
		if poison[k] {
			want = 0
		}
		if done[k] != want {
			t.Errorf("%s handled %d times, want %d", k, done[k], want)
		}
	}
	var dead []string
	for _, r := range b.read(t, event.DeadLetterTopic(group)) {
		d, err := consumer.ParseDeadLetter(r)
		if err != nil {
			t.Fatal(err)
		}
		if d.Class != consumer.ClassPermanent || d.Attempts != 1 {
			t.Errorf("dead letter %s: class %s attempts %d, want permanent, 1", d.Key, d.Class, d.Attempts)
		}
		dead = append(dead, string(d.Key))
	}
	slices.Sort(dead)
	if want := []string{"k-0-75", "k-2-3"}; !slices.Equal(dead, want) {
		t.Errorf("%d dead letters %v, want %v", len(dead), dead[:min(len(dead), 5)], want)
	}
	if n := len(b.read(t, event.RetryTopic(group, 1))); n != 0 {
		t.Errorf("%d records in the retry topic, want 0", n)
	}
	if got := metricValue(t, reg, "orderpipe_consumer_isolation_calls_total", "group", group); got == 0 {
		t.Errorf("isolation calls metric: got 0, want the calls made to isolate the poison records")
	}
}

// Permanent errors of their own (each record its own message) are trusted: the records are
// dead-lettered without being handed to the handler again (that would only repeat their work).
func TestPermanentErrorsOfTheirOwnAreNotIsolatedAgain(t *testing.T) {
	t.Parallel()
	const group = "own-errors"
	b := setup(t, "src", event.DeadLetterTopic(group))
	recs := b.produce(t, rec("src", 0, "ok-1"), rec("src", 0, "bad-1"), rec("src", 0, "bad-2"), rec("src", 0, "ok-2"))
	h := newRecorder(func(key string, _ int) error {
		if key == "bad-1" || key == "bad-2" {
			return consumer.Permanent(fmt.Errorf("%s: recipient refused", key))
		}
		return nil
	})
	b.start(t, consumer.Config{Group: group, Topics: []string{"src"}, StartAt: consumer.StartEarliest}, h)
	b.waitCommitted(t, group, "src", map[int32]int64{0: int64(len(recs))})
	for _, k := range []string{"ok-1", "bad-1", "bad-2", "ok-2"} {
		if n := h.count(k); n != 1 {
			t.Errorf("%s handed to the handler %d times, want 1", k, n)
		}
	}
	if n := len(b.read(t, event.DeadLetterTopic(group))); n != 2 {
		t.Errorf("%d dead letters, want 2", n)
	}
}
