package loadgen

import (
	"math"
	"slices"
	"sync"
	"time"
)

// timeline counts arrivals, requests and answers per second of a run.
type timeline struct {
	start   time.Time
	mu      sync.Mutex
	secs    []bucket
	emitted int // seconds already handed to OnSample
}

type bucket struct {
	offered, requests, accepted, refused, errors, unknown int
	latencies                                             []time.Duration
}

func newTimeline(start time.Time) *timeline { return &timeline{start: start} }

func (t *timeline) at(ts time.Time) *bucket {
	i := max(int(ts.Sub(t.start)/time.Second), 0)
	for len(t.secs) <= i {
		t.secs = append(t.secs, bucket{})
	}
	return &t.secs[i]
}

// arrival counts a buyer arriving at ts.
func (t *timeline) arrival(ts time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.at(ts).offered++
}

// answer counts a request sent at a.start and its answer at a.start + a.latency.
func (t *timeline) answer(a answer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.at(a.start).requests++
	b := t.at(a.start.Add(a.latency))
	switch a.class {
	case ClassAccepted:
		b.accepted++
	case ClassRefused:
		b.refused++
	case ClassError:
		b.errors++
	default:
		b.unknown++
	}
	b.latencies = append(b.latencies, a.latency)
}

// samples returns, while running (final false), the seconds not yet returned that are over by
// at least a second; at the end (final true), every second of the run.
func (t *timeline) samples(final bool) []Sample {
	t.mu.Lock()
	defer t.mu.Unlock()
	from, to := t.emitted, len(t.secs)
	if final {
		from = 0
	} else {
		to = min(to, int(time.Since(t.start)/time.Second)-1)
		if to <= from {
			return nil
		}
		t.emitted = to
	}
	out := make([]Sample, 0, max(to-from, 0))
	for i := from; i < to; i++ {
		b := t.secs[i]
		out = append(out, Sample{
			At: time.Duration(i) * time.Second, Offered: float64(b.offered), Requests: float64(b.requests),
			Accepted: float64(b.accepted), Refused: float64(b.refused), Errors: float64(b.errors),
			Unknown: float64(b.unknown), P99: quantile(b.latencies, 0.99),
		})
	}
	return out
}

// quantile is the nearest-rank q-quantile of ds (sorted in place).
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	rank := int(math.Ceil(q * float64(len(ds))))
	return ds[min(max(rank, 1), len(ds))-1]
}
