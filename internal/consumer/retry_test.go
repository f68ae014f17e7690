package consumer_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/consumer"
	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

var errDown = errors.New("database down")

func TestPoisonRecordIsDeadLetteredAndItsPartitionKeepsFlowing(t *testing.T) {
	t.Parallel()
	testenv.EachBroker(t, func(t *testing.T, k *testenv.Broker) {
		group, src := k.Name("poison"), k.Name("src")
		b := setupOn(t, k, src, event.DeadLetterTopic(group))
		var before []*kgo.Record
		for i := range 3 {
			before = append(before, rec(src, 1, "a"+string(rune('0'+i))))
		}
		b.produce(t, before...)
		poison := b.produce(t, rec(src, 1, "poison"))[0]
		var after []*kgo.Record
		for i := range 5 {
			after = append(after, rec(src, 1, "b"+string(rune('0'+i))))
		}
		b.produce(t, after...)

		h := newRecorder(func(key string, _ int) error {
			if key == "poison" {
				return consumer.Permanent(errors.New("schema: missing order_id"))
			}
			return nil
		})
		type hooked struct {
			key, class string
			err        error
		}
		var (
			hookMu sync.Mutex
			hooks  []hooked
		)
		reg := prometheus.NewRegistry()
		b.start(t, consumer.Config{
			Group: group, Topics: []string{src}, StartAt: consumer.StartEarliest,
			RetryInPlaceFor: time.Second, Registerer: reg,
			OnDeadLetter: func(_ context.Context, r *kgo.Record, class string, err error) error {
				hookMu.Lock()
				defer hookMu.Unlock()
				hooks = append(hooks, hooked{string(r.Key), class, err})
				return nil
			},
		}, h)

		h.waitDone(t, 10*time.Second, append(before, after...))
		b.waitCommitted(t, group, src, map[int32]int64{1: 9})

		if got := h.count("poison"); got != 1 {
			t.Fatalf("poison deliveries: got %d, want 1 (permanent errors are not retried)", got)
		}
		var order []string
		for _, d := range h.done() {
			order = append(order, d.key)
		}
		if want := []string{"a0", "a1", "a2", "b0", "b1", "b2", "b3", "b4"}; !slices.Equal(order, want) {
			t.Fatalf("handled: got %v, want %v", order, want)
		}
		dlq := b.read(t, event.DeadLetterTopic(group))
		if len(dlq) != 1 {
			t.Fatalf("dead letters: got %d, want 1", len(dlq))
		}
		d, err := consumer.ParseDeadLetter(dlq[0])
		if err != nil {
			t.Fatalf("parse dead letter: %v", err)
		}
		if d.Topic != src || d.Partition != 1 || d.Offset != poison.Offset {
			t.Fatalf("dead letter source: got %s/%d@%d, want src/1@%d", d.Topic, d.Partition, d.Offset, poison.Offset)
		}
		if d.Attempts != 1 || d.Class != consumer.ClassPermanent || !strings.Contains(d.Error, "missing order_id") {
			t.Fatalf("dead letter: got attempts %d class %q error %q, want 1, permanent, the handler's error", d.Attempts, d.Class, d.Error)
		}
		if time.Since(d.Time) > time.Minute || time.Since(d.Time) < 0 {
			t.Fatalf("dead letter time: got %s, want about now", d.Time)
		}
		if string(d.Key) != "poison" || string(d.Value) != "value of poison" {
			t.Fatalf("dead letter key/value: got %q/%q, want the original", d.Key, d.Value)
		}
		if got := hdr(dlq[0], "ce_id"); got != "ev-poison" {
			t.Fatalf("dead letter ce_id: got %q, want ev-poison", got)
		}
		if got := hdr(dlq[0], "x-origin"); got != "test" {
			t.Fatalf("dead letter original header x-origin: got %q, want test", got)
		}
		redrive := d.Redrive()
		if redrive.Topic != src || len(redrive.Headers) != 2 {
			t.Fatalf("redrive: got topic %s headers %v, want src and the 2 original headers", redrive.Topic, redrive.Headers)
		}

		hookMu.Lock()
		defer hookMu.Unlock()
		if len(hooks) != 1 || hooks[0].key != "poison" || hooks[0].class != consumer.ClassPermanent || hooks[0].err == nil {
			t.Fatalf("OnDeadLetter calls: got %+v, want one for poison, permanent", hooks)
		}
		if got := metricValue(t, reg, "orderpipe_consumer_dead_letters_total", "group", group, "topic", src, "class", consumer.ClassPermanent); got != 1 {
			t.Fatalf("dead letters metric: got %v, want 1", got)
		}
	}, kfakeOpts...)
}

func TestTransientFailureHealedInPlaceIsDone(t *testing.T) {
	t.Parallel()
	const group = "heal"
	b := setup(t, "src", event.RetryTopic(group, 1), event.DeadLetterTopic(group))
	recs := b.fill(t, "src", "r", 4)
	// r-0-1 fails twice, then works; every other record works at once.
	h := newRecorder(func(key string, attempt int) error {
		if key == "r-0-1" && attempt <= 2 {
			return consumer.Transient(errDown)
		}
		return nil
	})
	reg := prometheus.NewRegistry()
	b.start(t, consumer.Config{
		Group: group, Topics: []string{"src"}, StartAt: consumer.StartEarliest,
		RetryInPlaceFor: 3 * time.Second, RetryTiers: []time.Duration{time.Second}, Registerer: reg,
	}, h)
	h.waitDone(t, 10*time.Second, recs)
	b.waitCommitted(t, group, "src", b.ends(t, "src"))

	if got := h.count("r-0-1"); got != 3 {
		t.Fatalf("r-0-1 deliveries: got %d, want 3", got)
	}
	// The retries carry only the failing record.
	var retried int
	for _, call := range h.allCalls() {
		if slices.Contains(call, "r-0-1") && len(call) == 1 {
			retried++
		}
	}
	if retried != 2 {
		t.Fatalf("handler calls with just r-0-1: got %d, want 2 (calls %v)", retried, h.allCalls())
	}
	if got := b.read(t, event.RetryTopic(group, 1)); len(got) != 0 {
		t.Fatalf("retry topic records: got %d, want 0", len(got))
	}
	if got := b.read(t, event.DeadLetterTopic(group)); len(got) != 0 {
		t.Fatalf("dead letters: got %d, want 0", len(got))
	}
	if got := metricValue(t, reg, "orderpipe_consumer_records_total", "group", group, "outcome", "retried"); got != 2 {
		t.Fatalf("retried metric: got %v, want 2", got)
	}
	if got := metricValue(t, reg, "orderpipe_consumer_records_total", "group", group, "outcome", "done"); got < float64(len(recs)) {
		t.Fatalf("done metric: got %v, want at least %d", got, len(recs))
	}
}

func TestTransientFailureGoesThroughRetryTiersToDeadLetter(t *testing.T) {
	t.Parallel()
	testenv.EachBroker(t, func(t *testing.T, k *testenv.Broker) {
		group, src := k.Name("tiers"), k.Name("src")
		tiers := []time.Duration{300 * time.Millisecond, 600 * time.Millisecond}
		b := setupOn(t, k, src, event.RetryTopic(group, 1), event.RetryTopic(group, 2), event.DeadLetterTopic(group))
		b.fill(t, src, "x", 2)
		bad := b.produce(t, rec(src, 2, "bad"))[0]
		b.produce(t, rec(src, 2, "tail"))

		var (
			mu       sync.Mutex
			failedAt []time.Time // when each delivery of "bad" failed
			seenFrom []string    // topic of each delivery of "bad"
			tailDone time.Time
		)
		h := consumer.HandlerFunc(func(_ context.Context, recs []*kgo.Record) []error {
			errs := make([]error, len(recs))
			for i, r := range recs {
				if string(r.Key) == "tail" {
					mu.Lock()
					tailDone = time.Now()
					mu.Unlock()
				}
				if string(r.Key) == "bad" {
					mu.Lock()
					if len(seenFrom) == 0 || seenFrom[len(seenFrom)-1] != r.Topic {
						failedAt = append(failedAt, time.Now())
						seenFrom = append(seenFrom, r.Topic)
					}
					mu.Unlock()
					errs[i] = errDown // unclassified: transient
				}
			}
			return errs
		})
		reg := prometheus.NewRegistry()
		b.start(t, consumer.Config{
			Group: group, Topics: []string{src}, StartAt: consumer.StartEarliest,
			RetryInPlaceFor: 100 * time.Millisecond, RetryTiers: tiers, Registerer: reg,
		}, h)

		var dlq []*kgo.Record
		waitFor(t, 15*time.Second, func() bool {
			dlq = b.read(t, event.DeadLetterTopic(group))
			return len(dlq) > 0
		}, func() string { return "no dead letter" })
		b.waitCommitted(t, group, src, b.ends(t, src))

		mu.Lock()
		seen, failed, tailAt := slices.Clone(seenFrom), slices.Clone(failedAt), tailDone
		mu.Unlock()
		if want := []string{src, event.RetryTopic(group, 1), event.RetryTopic(group, 2)}; !slices.Equal(seen, want) {
			t.Fatalf("deliveries of bad: got %v, want %v", seen, want)
		}
		// The record after "bad" in its partition did not wait for bad's retries.
		if tailAt.IsZero() || !tailAt.Before(failed[1]) {
			t.Fatalf("tail handled at %v, want before bad's first retry at %v", tailAt, failed[1])
		}
		for i, d := range tiers {
			// A copy is produced after the in-place stage and not processed before its delay.
			if gap := failed[i+1].Sub(failed[i]); gap < d {
				t.Fatalf("tier %d processed %s after the previous failure, want at least %s", i+1, gap, d)
			}
		}

		for n := 1; n <= len(tiers); n++ {
			copies := b.read(t, event.RetryTopic(group, n))
			if len(copies) != 1 {
				t.Fatalf("retry topic %d: got %d records, want 1", n, len(copies))
			}
			c := copies[0]
			got := []string{hdr(c, consumer.HeaderRetryAttempt), hdr(c, consumer.HeaderSourceTopic),
				hdr(c, consumer.HeaderSourcePart), hdr(c, consumer.HeaderSourceOffset), hdr(c, consumer.HeaderErrorClass)}
			want := []string{string(rune('0' + n)), src, "2", strconv.FormatInt(bad.Offset, 10), consumer.ClassTransient}
			if !slices.Equal(got, want) {
				t.Fatalf("retry %d headers (attempt, source topic/partition/offset, class): got %v, want %v", n, got, want)
			}
			if !strings.Contains(hdr(c, consumer.HeaderError), "database down") {
				t.Fatalf("retry %d error header: got %q, want the handler's error", n, hdr(c, consumer.HeaderError))
			}
			nb := time.UnixMilli(atoi(t, hdr(c, consumer.HeaderRetryNotBefore)))
			if d := nb.Sub(c.Timestamp); d < tiers[n-1]-50*time.Millisecond || d > tiers[n-1]+time.Second {
				t.Fatalf("retry %d not-before: %s after the copy was written, want about %s", n, d, tiers[n-1])
			}
			if string(c.Key) != "bad" || hdr(c, "ce_id") != "ev-bad" || countHeader(c, consumer.HeaderRetryAttempt) != 1 {
				t.Fatalf("retry %d: got key %q ce_id %q and %d attempt headers, want the original key and headers once",
					n, c.Key, hdr(c, "ce_id"), countHeader(c, consumer.HeaderRetryAttempt))
			}
		}
		if len(dlq) != 1 {
			t.Fatalf("dead letters: got %d, want 1", len(dlq))
		}
		d, err := consumer.ParseDeadLetter(dlq[0])
		if err != nil {
			t.Fatalf("parse dead letter: %v", err)
		}
		if d.Topic != src || d.Partition != 2 || d.Offset != bad.Offset || d.Attempts != 3 || d.Class != consumer.ClassTransient {
			t.Fatalf("dead letter: got %s/%d@%d attempts %d class %s, want src/2@%d attempts 3 transient",
				d.Topic, d.Partition, d.Offset, d.Attempts, d.Class, bad.Offset)
		}
		if len(d.Headers) != 2 || hdr(dlq[0], consumer.HeaderRetryAttempt) != "" {
			t.Fatalf("dead letter headers: got %v, want the 2 original ones without retry headers", dlq[0].Headers)
		}
		if got := metricValue(t, reg, "orderpipe_consumer_records_total", "group", group, "outcome", "retry_topic"); got != 2 {
			t.Fatalf("retry_topic metric: got %v, want 2", got)
		}
		if got := metricValue(t, reg, "orderpipe_consumer_records_total", "group", group, "outcome", "dead_lettered"); got != 1 {
			t.Fatalf("dead_lettered metric: got %v, want 1", got)
		}
		if got := metricValue(t, reg, "orderpipe_consumer_dead_letters_total", "group", group, "topic", src, "class", consumer.ClassTransient); got != 1 {
			t.Fatalf("dead letters metric: got %v, want 1", got)
		}
		// Both retry topics' records are committed too.
		b.waitCommitted(t, group, event.RetryTopic(group, 1), b.ends(t, event.RetryTopic(group, 1)))
		b.waitCommitted(t, group, event.RetryTopic(group, 2), b.ends(t, event.RetryTopic(group, 2)))
	}, kfakeOpts...)
}

func TestPanicIsIsolatedToItsRecord(t *testing.T) {
	t.Parallel()
	const group = "panic"
	b := setup(t, "src", event.DeadLetterTopic(group))
	var recs []*kgo.Record
	for _, k := range []string{"p1", "p2", "boom", "p3", "p4"} {
		recs = append(recs, rec("src", 0, k))
	}
	b.produce(t, recs...)
	h := newRecorder(nil)
	panicky := consumer.HandlerFunc(func(ctx context.Context, rs []*kgo.Record) []error {
		for _, r := range rs {
			if string(r.Key) == "boom" {
				var m map[string]int
				//lint:ignore SA5000 the nil map write is the panic under test
				m["boom"]++ // a nil map write: a real bug
			}
		}
		return h.Handle(ctx, rs)
	})
	b.start(t, consumer.Config{
		Group: group, Topics: []string{"src"}, StartAt: consumer.StartEarliest, RetryInPlaceFor: 200 * time.Millisecond,
	}, panicky)

	others := slices.DeleteFunc(slices.Clone(recs), func(r *kgo.Record) bool { return string(r.Key) == "boom" })
	h.waitDone(t, 10*time.Second, others)
	b.waitCommitted(t, group, "src", map[int32]int64{0: 5})
	for k, n := range h.doneSet() {
		if n != 1 {
			t.Fatalf("%s handled %d times, want once (the panicking batch is split record by record)", k, n)
		}
	}
	dlq := b.read(t, event.DeadLetterTopic(group))
	if len(dlq) != 1 || string(dlq[0].Key) != "boom" {
		t.Fatalf("dead letters: got %d, want boom only", len(dlq))
	}
	d, err := consumer.ParseDeadLetter(dlq[0])
	if err != nil {
		t.Fatalf("parse dead letter: %v", err)
	}
	if d.Class != consumer.ClassTransient || !strings.Contains(d.Error, "panic") {
		t.Fatalf("dead letter: got class %s error %q, want transient with the panic", d.Class, d.Error)
	}
}

func countHeader(r *kgo.Record, key string) int {
	n := 0
	for _, h := range r.Headers {
		if h.Key == key {
			n++
		}
	}
	return n
}
