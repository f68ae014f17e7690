package consumer_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync"
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
	s := &prioStream{done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for i := 0; time.Now().Before(until); i++ {
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

// Priority records arrive faster than the consumer handles them: the backlog never clears, and the
// standard lane is paused but still moves about every MaxStarve.
func TestStandardLaneProgressesWhileAPriorityBacklogLasts(t *testing.T) {
	t.Parallel()
	const group = "starve"
	const maxStarve = 200 * time.Millisecond
	b := setup(t, "std", "prio", event.DeadLetterTopic(group))
	std := b.fillBig(t, "std", "s", 100)
	h := newRecorder(nil)
	h.each = time.Millisecond // at most 1000 records/s
	reg := prometheus.NewRegistry()
	cfg := laneConfig(group)
	cfg.MaxStarve, cfg.Registerer = maxStarve, reg

	// Priority records arrive continuously for 2.5s, 5 about every 3ms.
	start := time.Now()
	stop := time.Now().Add(2500 * time.Millisecond)
	stream := b.streamPriority(t, stop, 3*time.Millisecond, 5)
	time.Sleep(100 * time.Millisecond)
	b.start(t, cfg, h)

	var pausedSeen bool
	for {
		select {
		case <-stream.done:
		case <-time.After(20 * time.Millisecond):
			if metricValue(t, reg, "orderpipe_consumer_lane_paused", "group", group) == 1 {
				pausedSeen = true
			}
			continue
		}
		break
	}
	h.waitDone(t, 30*time.Second, append(std, stream.records()...))
	if !pausedSeen {
		t.Fatal("the standard lane was never paused while the priority backlog grew")
	}

	// While the priority backlog lasted, standard records were handled about every MaxStarve (plus
	// the time to work off the priority records already fetched), and the lane was paused in
	// between (gaps well above a batch's time). Without the bound they would wait for the whole
	// backlog: the 2.5s of arrivals and more.
	var last time.Time
	var maxGap time.Duration
	var gaps int
	for _, d := range h.done() {
		if d.topic != "std" || d.at.Before(start.Add(300*time.Millisecond)) || d.at.After(stop) {
			continue
		}
		if !last.IsZero() {
			gap := d.at.Sub(last)
			maxGap = max(maxGap, gap)
			if gap >= maxStarve/2 {
				gaps++
			}
		}
		last = d.at
	}
	t.Logf("standard lane: longest wait %s, %d pauses of at least %s", maxGap, gaps, maxStarve/2)
	if last.IsZero() {
		t.Fatal("no standard record handled while priority records kept coming")
	}
	if limit := maxStarve + 800*time.Millisecond; maxGap > limit {
		t.Fatalf("longest wait of the standard lane: got %s, want at most %s", maxGap, limit)
	}
	if gaps == 0 {
		t.Fatalf("standard records flowed without pauses (longest gap %s): priority was not preferred", maxGap)
	}
}

// Priority records the consumer keeps up with hold nothing back: a standard backlog is worked off
// while they trickle in, long before MaxStarve would have let it through.
func TestPriorityTrickleHoldsNothingBack(t *testing.T) {
	t.Parallel()
	const group = "trickle"
	b := setup(t, "std", "prio", event.DeadLetterTopic(group))
	std := b.fillBig(t, "std", "s", 100) // 300 records
	h := newRecorder(nil)
	h.delay = 2 * time.Millisecond
	cfg := laneConfig(group)
	cfg.MaxStarve = time.Minute

	// One priority record every 20ms for 3s: well below what the consumer handles, and never a
	// gap long enough for a poll to wait out its timeout.
	stop := time.Now().Add(3 * time.Second)
	stream := b.streamPriority(t, stop, 20*time.Millisecond, 1)
	time.Sleep(100 * time.Millisecond)
	b.start(t, cfg, h)
	h.waitDone(t, 30*time.Second, append(std, stream.records()...))

	var lastStd time.Time
	for _, d := range h.done() {
		if d.topic == "std" {
			lastStd = d.at
		}
	}
	t.Logf("standard backlog of %d worked off %s before the priority trickle ended", len(std), stop.Sub(lastStd).Round(time.Millisecond))
	if !lastStd.Before(stop) {
		t.Fatalf("the standard backlog was finished only %s after the trickle ended: a priority topic without a backlog held it back",
			lastStd.Sub(stop).Round(time.Millisecond))
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
