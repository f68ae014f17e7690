package consumer_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/consumer"
	"github.com/orderpipe/orderpipe/internal/event"
)

// bigRec is a record about the size of an OrderPlaced event, incompressible (fetch limits count
// compressed bytes).
func bigRec(topic string, partition int32, key string) *kgo.Record {
	r := rec(topic, partition, key)
	r.Value = make([]byte, 1000)
	_, _ = rand.Read(r.Value)
	return r
}

func (b *bundle) fillBig(t *testing.T, topic, prefix string, perPartition int) []*kgo.Record {
	t.Helper()
	var recs []*kgo.Record
	for i := range perPartition {
		for p := range int32(3) {
			recs = append(recs, bigRec(topic, p, fmt.Sprintf("%s-%d-%d", prefix, p, i)))
		}
	}
	return b.produce(t, recs...)
}

// prioStream produces priority records in the background: perTick records (spread over the
// partitions) about every `every`, until until.
type prioStream struct {
	done chan struct{}
	mu   sync.Mutex
	recs []*kgo.Record
}

func (b *bundle) streamPriority(t *testing.T, until time.Time, every time.Duration, perTick int) *prioStream {
	t.Helper()
	return b.streamPriorityWhile(t, func() bool { return time.Now().Before(until) }, every, perTick)
}

// streamPriorityWhile is streamPriority for as long as more reports true.
func (b *bundle) streamPriorityWhile(t *testing.T, more func() bool, every time.Duration, perTick int) *prioStream {
	t.Helper()
	s := &prioStream{done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for i := 0; more(); i++ {
			var recs []*kgo.Record
			for j := range perTick {
				recs = append(recs, bigRec("prio", int32((i+j)%3), fmt.Sprintf("p-%d-%d", i, j)))
			}
			if err := b.cl.ProduceSync(context.WithoutCancel(t.Context()), recs...).FirstErr(); err != nil {
				return
			}
			s.mu.Lock()
			s.recs = append(s.recs, recs...)
			s.mu.Unlock()
			time.Sleep(every)
		}
	}()
	return s
}

// produced is how many records the stream has produced so far.
func (s *prioStream) produced() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.recs)
}

// records waits until the stream ended and returns what it produced.
func (s *prioStream) records() []*kgo.Record {
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.recs
}

func laneConfig(group string) consumer.Config {
	return consumer.Config{
		Group: group, Topics: []string{"prio", "std"}, StartAt: consumer.StartEarliest,
		PriorityTopic: "prio", MaxStarve: 200 * time.Millisecond, MaxPollRecords: 50,
	}
}

func TestPriorityRecordsOvertakeTheStandardBacklog(t *testing.T) {
	t.Parallel()
	const group = "lanes"
	b := setup(t, "std", "prio", event.DeadLetterTopic(group))
	std := b.fillBig(t, "std", "s", 700)   // 2100 records
	prio := b.fillBig(t, "prio", "p", 200) // 600 records: several fetches' worth
	h := newRecorder(nil)
	h.delay = 2 * time.Millisecond
	b.start(t, laneConfig(group), h)
	h.waitDone(t, 30*time.Second, append(std, prio...))

	stdBefore, prioSeen := 0, 0
	for _, d := range h.done() {
		if d.topic == "prio" {
			prioSeen++
			if prioSeen == len(prio) {
				break
			}
			continue
		}
		stdBefore++
	}
	t.Logf("standard records handled before the last priority record: %d of %d", stdBefore, len(std))
	// Without lanes, fetches share their bytes between the topics and about as many standard
	// records as priority ones go first; with lanes, at most the first fetch's share.
	if stdBefore > len(std)/6 {
		t.Fatalf("standard records handled before the last priority record: got %d, want at most %d of the %d backlog",
			stdBefore, len(std)/6, len(std))
	}
}

// A priority backlog that takes seconds to work off: the standard lane is paused, but still moves
// about every MaxStarve while the backlog lasts. Judged by the order of the handler's batches, not
// by how long anything took, so a slow machine does not fail it: a slower handler only makes the
// backlog last longer (more releases), while a consumer without the starvation bound handles no
// standard batch before the backlog is gone, and one without priority handles standard records in
// most batches.
func TestStandardLaneProgressesWhileAPriorityBacklogLasts(t *testing.T) {
	t.Parallel()
	const group = "starve"
	b := setup(t, "std", "prio", event.DeadLetterTopic(group))
	std := b.fillBig(t, "std", "s", 100)    // 300 records
	prio := b.fillBig(t, "prio", "p", 1000) // 3000 records, at least 3s of handling
	h := newRecorder(nil)
	h.each = time.Millisecond
	reg := prometheus.NewRegistry()
	cfg := laneConfig(group)
	cfg.MaxStarve, cfg.Registerer = 200*time.Millisecond, reg
	b.start(t, cfg, h)

	all := append(std, prio...)
	var pausedSeen bool
	waitFor(t, 60*time.Second, func() bool {
		if metricValue(t, reg, "orderpipe_consumer_lane_paused", "group", group) == 1 {
			pausedSeen = true
		}
		return len(h.doneSet()) == len(all)
	}, func() string { return fmt.Sprintf("%d of %d records handled", len(h.doneSet()), len(all)) })
	if !pausedSeen {
		t.Fatal("the standard lane was never seen paused while the priority backlog lasted")
	}

	// Per handler batch: does it carry standard records, and is it before the last priority one?
	hasStd, lastPrio := map[int]bool{}, -1
	for _, d := range h.done() {
		if d.topic == "std" {
			hasStd[d.batch] = true
		} else {
			lastPrio = max(lastPrio, d.batch)
		}
	}
	var stdBatches, separated int
	prev := -1
	for batch := 0; batch < lastPrio; batch++ {
		if !hasStd[batch] {
			continue
		}
		stdBatches++
		if prev >= 0 && batch > prev+1 {
			separated++ // priority-only batches between two standard ones: the lane was paused
		}
		prev = batch
	}
	t.Logf("%d batches before the last priority record; %d carried standard records, %d of the gaps between them held priority-only batches",
		lastPrio, stdBatches, separated)
	if stdBatches < 3 {
		t.Fatalf("%d batches with standard records while the priority backlog lasted, want at least 3: the standard lane starved", stdBatches)
	}
	if separated*2 < stdBatches-1 {
		t.Fatalf("only %d of %d gaps between standard batches held priority-only batches: priority was not preferred", separated, stdBatches-1)
	}
}

// Priority records the consumer keeps up with hold nothing back: a standard backlog is worked off
// while they trickle in, long before MaxStarve (a minute) would have let it through. The trickle
// lasts until the standard backlog is done; if the lanes held it back, it would last MaxStarve and
// waitDone gives up first.
func TestPriorityTrickleHoldsNothingBack(t *testing.T) {
	t.Parallel()
	const group = "trickle"
	b := setup(t, "std", "prio", event.DeadLetterTopic(group))
	std := b.fillBig(t, "std", "s", 100) // 300 records
	h := newRecorder(nil)
	h.each = time.Millisecond // the backlog takes a few hundred ms: the trickle runs through it
	cfg := laneConfig(group)
	cfg.MaxStarve = time.Minute

	stdDone := func() bool {
		set := h.doneSet()
		for _, r := range std {
			if set[string(r.Key)] == 0 {
				return false
			}
		}
		return true
	}
	// One priority record every 20ms: well below what the consumer handles, and never a gap long
	// enough for a poll to wait out its timeout.
	var stopped atomic.Bool
	t.Cleanup(func() { stopped.Store(true) })
	stream := b.streamPriorityWhile(t, func() bool { return !stopped.Load() && !stdDone() }, 20*time.Millisecond, 1)
	waitFor(t, 10*time.Second, func() bool { return stream.produced() >= 3 }, func() string { return "the trickle did not start" })
	b.start(t, cfg, h)
	h.waitDone(t, 30*time.Second, std)
	prio := stream.records()
	h.waitDone(t, 30*time.Second, prio)
	// The trickle was consumed while the standard backlog was: priority records were handled
	// before the last standard one.
	var lastStd int
	for i, d := range h.done() {
		if d.topic == "std" {
			lastStd = i
		}
	}
	var prioBefore int
	for _, d := range h.done()[:lastStd] {
		if d.topic == "prio" {
			prioBefore++
		}
	}
	t.Logf("%d priority records produced while the standard backlog was worked off, %d handled before its last record", len(prio), prioBefore)
	if prioBefore < 3 {
		t.Fatalf("%d priority records handled before the last standard one, want the trickle (at least 3) to run alongside the backlog", prioBefore)
	}
}

// Paused lanes and rebalances: a member joining and leaving while the standard lane is paused
// loses no record.
func TestLanesLoseNothingAcrossRebalances(t *testing.T) {
	t.Parallel()
	const group = "lanes-churn"
	b := setup(t, "std", "prio", event.DeadLetterTopic(group))
	std := b.fillBig(t, "std", "s", 200)
	h := newRecorder(nil)
	h.delay = 2 * time.Millisecond
	cfg := laneConfig(group)

	stream := b.streamPriority(t, time.Now().Add(2*time.Second), 5*time.Millisecond, 1)
	b.start(t, cfg, h)
	time.Sleep(500 * time.Millisecond)
	second := b.start(t, cfg, h)
	time.Sleep(700 * time.Millisecond)
	second.stop(t)
	h.waitDone(t, 30*time.Second, append(std, stream.records()...))
	b.waitCommitted(t, group, "std", b.ends(t, "std"))
	b.waitCommitted(t, group, "prio", b.ends(t, "prio"))
}
