package bench

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// requestTimeout bounds one request of the load generator; a slower answer counts as an error.
const requestTimeout = 10 * time.Second

// maxOpenWorkers caps the goroutines the open-model generator may start. Vegeta starts one more
// whenever every worker is busy at the moment a request is due, so the arrival schedule does not
// depend on the answers (no coordinated omission) until this cap is reached; a run that hits it
// shows an offered rate below its target, which the report prints.
const maxOpenWorkers = 4000

// target is where and what one arm is sent: every request is the same order body with a fresh
// Idempotency-Key. All runs against a target share its connections, so a run does not start
// with a burst of connection setups.
type target struct {
	url    string
	header http.Header // without Idempotency-Key
	body   []byte
	client *http.Client
}

// newTarget returns a target with its own HTTP client (keep-alive, no redirects, no idle cap).
func newTarget(url string, header http.Header, body []byte) target {
	return target{url: url, header: header, body: body, client: &http.Client{
		Timeout: requestTimeout,
		Transport: &http.Transport{
			MaxIdleConnsPerHost: maxOpenWorkers,
			IdleConnTimeout:     time.Minute,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// load is one measured run: its pacing and size.
type load struct {
	label    string
	rate     int // requests per second; 0 means as fast as workers allow (closed loop)
	workers  int // concurrent requests for a closed loop; the initial pool for an open model
	duration time.Duration
}

// runResult is what one run measured.
type runResult struct {
	label      string
	rate       int // offered rate target, 0 for a closed loop
	workers    int
	elapsed    time.Duration // from the first request sent to the last answer received
	requests   int
	codes      map[int]int // HTTP status -> count; 0 counts transport errors and timeouts
	errSamples []string    // a few distinct error texts
	latencies  []time.Duration
	cpu        cpuUse
	inside     insideTimes
	// samples are an open-model run's requests by send time (nil for a closed loop).
	samples []sentSample
	// early and late are the median latencies of the requests sent in the first and in the last
	// third of an open-model run (thirds false for a closed loop): a queue that grows during the
	// run shows as a late median far above the early one.
	early, late time.Duration
	thirds      bool
}

// sentSample is one request of an open-model run: when it was sent and how long its answer took.
type sentSample struct {
	sent    time.Time
	latency time.Duration
}

// insideTimes are the server's own mean timings per order over a run (the full intake only).
type insideTimes struct {
	known   bool
	request time.Duration // POST /v1/orders as the api's HTTP middleware saw it
	reserve time.Duration // the Redis reservation
	produce time.Duration // from produce to the broker's acknowledgement
}

// accepted is the number of 202 answers.
func (r runResult) accepted() int { return r.codes[http.StatusAccepted] }

// failed is the number of requests not answered 202.
func (r runResult) failed() int { return r.requests - r.accepted() }

// throughput is accepted orders per second of elapsed time.
func (r runResult) throughput() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.accepted()) / r.elapsed.Seconds()
}

// offered is requests sent per second of elapsed time.
func (r runResult) offered() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.requests) / r.elapsed.Seconds()
}

// quantile returns the q-quantile (0 < q <= 1) of the latencies by the nearest-rank method,
// exact rather than estimated; zero when there are none.
func (r runResult) quantile(q float64) time.Duration {
	return quantile(r.latencies, q)
}

// mean is the average latency.
func (r runResult) mean() time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	var sum time.Duration
	for _, l := range r.latencies {
		sum += l
	}
	return sum / time.Duration(len(r.latencies))
}

// quantile is the nearest-rank q-quantile of sorted (ascending) durations.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(q * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// newTargeter yields the same order for every request, each with its own Idempotency-Key
// (prefix + a sequence number). It is safe for concurrent use, as vegeta calls it from every
// worker.
func newTargeter(t target, prefix string) vegeta.Targeter {
	var seq atomic.Uint64
	return func(tgt *vegeta.Target) error {
		h := make(http.Header, len(t.header)+1)
		for k, v := range t.header {
			h[k] = v // read-only: Target.Request copies the values
		}
		h["Idempotency-Key"] = []string{prefix + strconv.FormatUint(seq.Add(1), 10)}
		tgt.Method = http.MethodPost
		tgt.URL = t.url
		tgt.Body = t.body
		tgt.Header = h
		return nil
	}
}

// attack runs l against t and collects every result. An open model (rate > 0) sends on a fixed
// schedule whatever the answers; a closed loop (rate 0) keeps exactly l.workers requests in
// flight. Cancelling ctx stops sending; answers in flight are still collected.
func attack(ctx context.Context, t target, keyPrefix string, l load) runResult {
	opts := []func(*vegeta.Attacker){vegeta.Client(t.client), vegeta.MaxBody(4096)}
	pacer := vegeta.Rate{Freq: l.rate, Per: time.Second}
	if l.rate > 0 {
		opts = append(opts, vegeta.Workers(uint64(max(l.workers, 1))), vegeta.MaxWorkers(maxOpenWorkers))
	} else {
		opts = append(opts, vegeta.Workers(uint64(l.workers)), vegeta.MaxWorkers(uint64(l.workers)))
	}
	atk := vegeta.NewAttacker(opts...)
	stop := context.AfterFunc(ctx, func() { atk.Stop() })
	defer stop()

	res := runResult{label: l.label, rate: l.rate, workers: l.workers, codes: map[int]int{}}
	if l.rate > 0 {
		res.latencies = make([]time.Duration, 0, int(float64(l.rate)*l.duration.Seconds())+16)
	}
	var first, last time.Time
	seenErr := map[string]bool{}
	for r := range atk.Attack(newTargeter(t, keyPrefix), pacer, l.duration, l.label) {
		if first.IsZero() || r.Timestamp.Before(first) {
			first = r.Timestamp
		}
		if end := r.End(); end.After(last) {
			last = end
		}
		res.requests++
		res.latencies = append(res.latencies, r.Latency)
		if l.rate > 0 {
			res.samples = append(res.samples, sentSample{r.Timestamp, r.Latency})
		}
		code := int(r.Code) // 0 when no answer came (connection error, timeout)
		res.codes[code]++
		if code != http.StatusAccepted {
			msg := r.Error
			if code != 0 {
				msg = fmt.Sprintf("HTTP %d: %.160s", code, r.Body)
			}
			if !seenErr[msg] && len(seenErr) < 5 {
				seenErr[msg] = true
				res.errSamples = append(res.errSamples, msg)
			}
		}
	}
	if !first.IsZero() {
		res.elapsed = last.Sub(first)
	}
	if l.rate > 0 {
		res.early, res.late, res.thirds = thirdMedians(first, l.duration, res.samples)
	}
	slices.Sort(res.latencies)
	return res
}

// thirdMedians returns the median latency of the requests sent in the first and in the last
// third of a run of length d that started at start; ok is false when a third is empty.
func thirdMedians(start time.Time, d time.Duration, samples []sentSample) (early, late time.Duration, ok bool) {
	var a, b []time.Duration
	for _, s := range samples {
		switch off := s.sent.Sub(start); {
		case off < d/3:
			a = append(a, s.latency)
		case off >= d-d/3:
			b = append(b, s.latency)
		}
	}
	if len(a) == 0 || len(b) == 0 {
		return 0, 0, false
	}
	slices.Sort(a)
	slices.Sort(b)
	return quantile(a, 0.5), quantile(b, 0.5), true
}

// statusSummary renders the status counts, for example "202: 9990, 0 (transport): 10".
func statusSummary(codes map[int]int) string {
	keys := make([]int, 0, len(codes))
	for k := range codes {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	s := ""
	for i, k := range keys {
		if i > 0 {
			s += ", "
		}
		if k == 0 {
			s += fmt.Sprintf("transport error: %d", codes[k])
		} else {
			s += fmt.Sprintf("%d: %d", k, codes[k])
		}
	}
	return s
}
