package consumer_test

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/orderpipe/orderpipe/internal/consumer"
	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

// A consumer that dies after its handler finished a batch but before the commit loses nothing:
// another member of the group gets the records again, and the dead member's late commit is fenced.
func TestCrashBeforeCommitRedeliversTheBatch(t *testing.T) {
	t.Parallel()
	testenv.EachBroker(t, func(t *testing.T, k *testenv.Broker) {
		group, src := k.Name("crash"), k.Name("src")
		b := setupOn(t, k, src, event.DeadLetterTopic(group))
		first := b.fill(t, src, "f", 5)

		// A's handler finishes its first batch, then "crashes": its connections are cut before it can
		// commit, and it stays stuck until the test ends.
		d := &cutDialer{}
		handled := make(chan []string, 1)
		release := make(chan struct{})
		var aCalls atomic.Int32
		a := consumer.HandlerFunc(func(_ context.Context, recs []*kgo.Record) []error {
			if aCalls.Add(1) == 1 {
				keys := make([]string, len(recs))
				for i, r := range recs {
					keys[i] = string(r.Key)
				}
				handled <- keys
				<-release
			}
			return nil
		})
		ra := b.start(t, consumer.Config{Group: group, Topics: []string{src}, StartAt: consumer.StartEarliest,
			KafkaOpts: []kgo.Opt{kgo.Dialer(d.dial)}}, a)
		unblock := sync.OnceFunc(func() { close(release) })
		t.Cleanup(unblock) // runs before A is stopped, even if the test fails
		var aKeys []string
		select {
		case aKeys = <-handled:
		case <-time.After(10 * time.Second):
			t.Fatal("consumer A never got a batch")
		}
		d.sever()

		// B joins the same group and, once A's session expires, gets every partition from the last
		// commit: nothing, so everything A handled comes again.
		h := newRecorder(nil)
		b.start(t, consumer.Config{Group: group, Topics: []string{src}, StartAt: consumer.StartEarliest}, h)
		h.waitDone(t, 15*time.Second, first)
		set := h.doneSet()
		for _, k := range aKeys {
			if set[k] == 0 {
				t.Fatalf("record %s handled by the crashed member was not redelivered", k)
			}
		}
		more := b.fill(t, src, "m", 3)
		h.waitDone(t, 10*time.Second, more)
		ends := b.ends(t, src)
		b.waitCommitted(t, group, src, ends)

		// A comes back from the dead and tries to commit its stale batch: fenced, no rewind.
		d.restore()
		unblock()
		ra.stop(t)
		if got := b.committed(t, group, src); !maps.Equal(got, ends) {
			t.Fatalf("committed after the stale member stopped: got %v, want %v", got, ends)
		}
	}, kfakeOpts...)
}

// Cancelling Run finishes the batch in hand with a live context, commits it, and leaves the
// group: a successor does not see those records again.
func TestShutdownFinishesAndCommitsTheBatchInHand(t *testing.T) {
	t.Parallel()
	testenv.EachBroker(t, func(t *testing.T, k *testenv.Broker) {
		group, src := k.Name("drain"), k.Name("src")
		b := setupOn(t, k, src, event.DeadLetterTopic(group))
		recs := b.fill(t, src, "d", 4)

		inBatch := make(chan struct{})
		var once sync.Once
		var ctxErrInBatch atomic.Value
		h := newRecorder(nil)
		slow := consumer.HandlerFunc(func(ctx context.Context, rs []*kgo.Record) []error {
			once.Do(func() { close(inBatch) })
			time.Sleep(300 * time.Millisecond) // Run's context ends meanwhile
			ctxErrInBatch.Store(fmt.Sprint(ctx.Err()))
			return h.Handle(ctx, rs)
		})
		r := b.start(t, consumer.Config{Group: group, Topics: []string{src}, StartAt: consumer.StartEarliest, MaxPollRecords: 5}, slow)
		<-inBatch
		r.stop(t)

		if got := ctxErrInBatch.Load(); got != "<nil>" {
			t.Fatalf("handler context error during the drained batch: got %v, want <nil>", got)
		}
		handled := h.doneSet()
		if len(handled) == 0 {
			t.Fatal("the batch in hand was not finished")
		}
		committed := b.committed(t, group, src)
		var n int64
		for _, o := range committed {
			n += o
		}
		if n != int64(len(handled)) {
			t.Fatalf("committed records: got %d (%v), want the %d handled before shutdown", n, committed, len(handled))
		}

		h2 := newRecorder(nil)
		b.start(t, consumer.Config{Group: group, Topics: []string{src}, StartAt: consumer.StartEarliest}, h2)
		var rest []*kgo.Record
		for _, rc := range recs {
			if handled[string(rc.Key)] == 0 {
				rest = append(rest, rc)
			}
		}
		if len(rest) == 0 {
			t.Fatalf("all %d records handled in the first batch, want some left for the successor", len(recs))
		}
		rest = append(rest, b.fill(t, src, "after", 1)...) // the successor has read everything once it has these
		h2.waitDone(t, 10*time.Second, rest)
		b.waitCommitted(t, group, src, b.ends(t, src))
		for k := range h2.doneSet() {
			if handled[k] > 0 {
				t.Fatalf("record %s was committed before shutdown but delivered again", k)
			}
		}
	}, kfakeOpts...)
}

// Members joining and leaving mid-stream: every record is handled at least once and no commit
// for a partition is lower than an earlier one.
func TestRebalanceMidStreamLosesNothingAndCommitsNeverGoBack(t *testing.T) {
	t.Parallel()
	const group = "churn"
	b := setup(t, "src", event.DeadLetterTopic(group))

	var (
		mu       sync.Mutex
		last     = map[int32]int64{}
		backward []string
	)
	b.cluster.ControlKey(int16(kmsg.OffsetCommit), func(req kmsg.Request) (kmsg.Response, error, bool) {
		r := req.(*kmsg.OffsetCommitRequest)
		if r.Group != group {
			return nil, nil, false
		}
		mu.Lock()
		defer mu.Unlock()
		for _, tpc := range r.Topics {
			for _, p := range tpc.Partitions {
				if p.Offset < last[p.Partition] {
					backward = append(backward, fmt.Sprintf("partition %d: %d after %d", p.Partition, p.Offset, last[p.Partition]))
				}
				last[p.Partition] = max(last[p.Partition], p.Offset)
			}
		}
		return nil, nil, false
	})

	h := newRecorder(nil)
	h.delay = 2 * time.Millisecond
	cfg := consumer.Config{Group: group, Topics: []string{"src"}, StartAt: consumer.StartEarliest, MaxPollRecords: 20}

	stopProducing := make(chan struct{})
	var produced []*kgo.Record
	var producedMu sync.Mutex
	producerDone := make(chan struct{})
	go func() {
		defer close(producerDone)
		for i := 0; ; i++ {
			select {
			case <-stopProducing:
				return
			default:
			}
			recs := make([]*kgo.Record, 0, 30)
			for j := range 10 {
				for p := range int32(3) {
					recs = append(recs, rec("src", p, fmt.Sprintf("c-%d-%d-%d", p, i, j)))
				}
			}
			if err := b.cl.ProduceSync(context.WithoutCancel(t.Context()), recs...).FirstErr(); err != nil {
				return
			}
			producedMu.Lock()
			produced = append(produced, recs...)
			producedMu.Unlock()
			time.Sleep(10 * time.Millisecond)
		}
	}()

	ra := b.start(t, cfg, h)
	b.start(t, cfg, h)
	time.Sleep(700 * time.Millisecond)
	rc := b.start(t, cfg, h) // a third member joins
	time.Sleep(700 * time.Millisecond)
	rc.stop(t) // and leaves
	time.Sleep(500 * time.Millisecond)
	ra.stop(t) // one of the first two leaves too
	time.Sleep(300 * time.Millisecond)
	close(stopProducing)
	<-producerDone

	producedMu.Lock()
	all := produced
	producedMu.Unlock()
	if len(all) < 300 {
		t.Fatalf("produced %d records, want a stream of at least 300", len(all))
	}
	h.waitDone(t, 20*time.Second, all)
	b.waitCommitted(t, group, "src", b.ends(t, "src"))

	mu.Lock()
	defer mu.Unlock()
	if len(last) != 3 {
		t.Fatalf("observed commits for partitions %v, want all 3", last)
	}
	if len(backward) > 0 {
		t.Fatalf("commits went backwards: %v", backward)
	}
}

// StartAt decides where a new group starts: the beginning, or the end (pinned by a commit).
func TestStartAtChoosesWhereANewGroupStarts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		startAt    string
		wantBefore bool
	}{
		{consumer.StartEarliest, true},
		{consumer.StartLatest, false},
	}
	for _, tt := range tests {
		t.Run(tt.startAt, func(t *testing.T) {
			t.Parallel()
			group := "start-" + tt.startAt
			b := setup(t, "src", event.DeadLetterTopic(group))
			before := b.fill(t, "src", "old", 2)
			h := newRecorder(nil)
			b.start(t, consumer.Config{Group: group, Topics: []string{"src"}, StartAt: tt.startAt}, h)
			if tt.startAt == consumer.StartLatest {
				// The start position is committed as soon as the partitions are assigned.
				b.waitCommitted(t, group, "src", map[int32]int64{0: 2, 1: 2, 2: 2})
			} else {
				h.waitDone(t, 10*time.Second, before)
			}
			after := b.fill(t, "src", "new", 2)
			h.waitDone(t, 10*time.Second, after)
			b.waitCommitted(t, group, "src", map[int32]int64{0: 4, 1: 4, 2: 4})
			got := h.doneSet()
			for _, r := range before {
				if seen := got[string(r.Key)] > 0; seen != tt.wantBefore {
					t.Fatalf("record %s produced before the group existed: handled %v, want %v", r.Key, seen, tt.wantBefore)
				}
			}
		})
	}
}
