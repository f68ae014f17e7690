package e2e

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/topology"
)

// GroupTopics are the topics each consumer group reads, with the retry tiers the e2e environment
// configures.
func GroupTopics() map[string][]string {
	return map[string][]string{
		topology.GroupOrderWorker: {event.TopicOrdersPlaced, event.TopicOrdersPlacedPriority,
			event.RetryTopic(topology.GroupOrderWorker, 1), event.RetryTopic(topology.GroupOrderWorker, 2)},
		topology.GroupInventorySync: {event.TopicInventoryStock},
		topology.GroupNotifier: {event.TopicOrderEvents,
			event.RetryTopic(topology.GroupNotifier, 1), event.RetryTopic(topology.GroupNotifier, 2)},
		topology.GroupReports: {event.TopicOrderEvents, event.RetryTopic(topology.GroupReports, 1)},
	}
}

// CriticalGroups are the groups whose lag must return to zero quickly (orders and stock).
var CriticalGroups = []string{topology.GroupOrderWorker, topology.GroupInventorySync}

// LagSample is the records each group has not consumed yet, at one moment of the run.
type LagSample struct {
	At  time.Duration    `json:"at_ns"` // since the run started
	Lag map[string]int64 `json:"lag"`   // by group; -1 when it could not be read
}

// lagMeter computes lag as end offset minus committed offset (or the log start where the group
// has not committed yet: every group starts at the earliest offset), per partition of the
// group's topics, so a group whose members all died still shows its lag.
type lagMeter struct {
	cl  *kgo.Client
	adm *kadm.Client
}

func newLagMeter(brokers []string) (*lagMeter, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ClientID("orderpipe-e2e-lag"), kgo.RetryTimeout(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("lag client: %w", err)
	}
	return &lagMeter{cl: cl, adm: kadm.NewClient(cl)}, nil
}

func (m *lagMeter) close() { m.cl.Close() }

// measure returns each group's total lag.
func (m *lagMeter) measure(ctx context.Context) (map[string]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	groups := GroupTopics()
	var all []string
	seen := map[string]bool{}
	for _, ts := range groups {
		for _, t := range ts {
			if !seen[t] {
				seen[t] = true
				all = append(all, t)
			}
		}
	}
	ends, err := m.adm.ListEndOffsets(ctx, all...)
	if err != nil {
		return nil, fmt.Errorf("end offsets: %w", err)
	}
	starts, err := m.adm.ListStartOffsets(ctx, all...)
	if err != nil {
		return nil, fmt.Errorf("start offsets: %w", err)
	}
	out := map[string]int64{}
	for g, topics := range groups {
		commits, err := m.adm.FetchOffsets(ctx, g)
		if err != nil {
			return nil, fmt.Errorf("offsets of %s: %w", g, err)
		}
		var lag int64
		for _, t := range topics {
			for p, end := range ends[t] {
				if end.Err != nil {
					return nil, fmt.Errorf("end offset %s/%d: %w", t, p, end.Err)
				}
				from := int64(0)
				if s, ok := starts.Lookup(t, p); ok && s.Err == nil {
					from = s.Offset
				}
				if c, ok := commits.Lookup(t, p); ok && c.Err == nil && c.At > from {
					from = c.At
				}
				if end.Offset > from {
					lag += end.Offset - from
				}
			}
		}
		out[g] = lag
	}
	return out, nil
}

// lagSampler samples lag every interval until stopped.
type lagSampler struct {
	mu      sync.Mutex
	samples []LagSample
	stop    chan struct{}
	done    chan struct{}
}

func startLagSampler(m *lagMeter, start time.Time, every time.Duration) *lagSampler {
	s := &lagSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			lag, err := m.measure(context.Background())
			if err != nil {
				lag = map[string]int64{}
				for g := range GroupTopics() {
					lag[g] = -1
				}
			}
			s.mu.Lock()
			s.samples = append(s.samples, LagSample{At: time.Since(start), Lag: lag})
			s.mu.Unlock()
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *lagSampler) finish() []LagSample {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]LagSample(nil), s.samples...)
}
