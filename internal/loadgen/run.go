package loadgen

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// Outcome classes.
const (
	ClassAccepted = "accepted" // 202: the order id is known
	ClassRefused  = "refused"  // 409, 422, 429, 503: a deliberate refusal, with its reason
	ClassError    = "error"    // any other status
	ClassUnknown  = "unknown"  // no answer (transport error, timeout): the buyer never learned
)

// maxOpenWorkers caps the goroutines vegeta may start. It starts one more whenever every
// worker is busy at the moment a buyer is due, so the arrivals do not depend on the answers
// until this cap is reached; a run that hits it shows an offered rate below the curve.
const maxOpenWorkers = 10000

// Target is the api a run is played against.
type Target struct {
	BaseURL string // for example http://127.0.0.1:8080
	Token   string // an API key with orders:write
}

// Options are the optional hooks of a run.
type Options struct {
	// Progress, when set, receives one line per second of the run and a closing line.
	Progress io.Writer
	// OnSample, when set, is called with each second's sample shortly after the second ends
	// (serialised, from one goroutine).
	OnSample func(Sample)
}

// Outcome is what one submission of one buyer ended with: the first submission of every buyer,
// and a second one (Duplicate) for buyers who submit twice with the same Idempotency-Key.
type Outcome struct {
	Buyer          int    `json:"buyer"`
	IdempotencyKey string `json:"idempotency_key"`
	CustomerID     string `json:"customer_id"`
	OrderID        string `json:"order_id,omitempty"`
	Express        bool   `json:"express,omitempty"`
	Lines          []Line `json:"lines"`
	Token          string `json:"token"`
	Class          string `json:"class"` // accepted, refused, error or unknown
	Status         int    `json:"status"`
	// Reason is the problem type's last segment (out-of-stock, rate-limited, unavailable,
	// idempotency-key-in-flight, invalid-order ...), "http-<status>" for an answer that is not a
	// problem document, or the transport error of an unknown outcome.
	Reason string `json:"reason,omitempty"`
	// Short lists the SKUs an out-of-stock refusal named as short.
	Short     []string      `json:"short,omitempty"`
	Start     time.Time     `json:"start"`   // when the first attempt was sent
	Latency   time.Duration `json:"latency"` // of the last attempt
	Elapsed   time.Duration `json:"elapsed"` // from the first attempt's start to the last answer
	Attempts  int           `json:"attempts"`
	Duplicate bool          `json:"duplicate,omitempty"`
	// Tries are the earlier attempts that were retried (empty when the first answer was final).
	Tries []Try `json:"tries,omitempty"`
}

// Try is one attempt that was answered with a retryable status.
type Try struct {
	Status  int           `json:"status"`
	Reason  string        `json:"reason"`
	Start   time.Time     `json:"start"`
	Latency time.Duration `json:"latency"`
}

// Sample is one second of the run. Offered counts buyers arriving (first submissions); the
// other counts are HTTP answers received in the second (a retried request counts each answer).
type Sample struct {
	At       time.Duration `json:"at"` // the second's start since the run began
	Offered  float64       `json:"offered"`
	Requests float64       `json:"requests"` // HTTP requests sent, retries and duplicates included
	Accepted float64       `json:"accepted"`
	Refused  float64       `json:"refused"`
	Errors   float64       `json:"errors"`
	Unknown  float64       `json:"unknown"`
	P99      time.Duration `json:"p99"` // of the answers received in the second
}

// Result is a whole run.
type Result struct {
	Scenario string        `json:"scenario"`
	RunID    string        `json:"run_id"` // in every customer id and Idempotency-Key of the run
	Started  time.Time     `json:"started"`
	Elapsed  time.Duration `json:"elapsed"` // from the first arrival to the last answer
	Outcomes []Outcome     `json:"outcomes"`
	Timeline []Sample      `json:"timeline"`
	// Stock is the scenario's starting stock per SKU (what the checker compares sales with).
	Stock map[string]int64 `json:"stock"`
	// Promotions are the ids of the scenario's promotions (the checker checks their caps and
	// limits, and those of any other promotion that priced a line of the run).
	Promotions []string `json:"promotions,omitempty"`
	// Expected is what the scenario must at least show (Scenario.Expect); nil in outcomes files
	// written before it existed, which the checker then holds to a run with accepted orders.
	Expected *Expectation `json:"expected,omitempty"`
}

// WriteJSON writes r as one JSON document.
func (r *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("write outcomes: %w", err)
	}
	return nil
}

// ReadResult reads a Result written by WriteJSON; unknown fields are errors.
func ReadResult(rd io.Reader) (*Result, error) {
	dec := json.NewDecoder(rd)
	dec.DisallowUnknownFields()
	var r Result
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("read outcomes: %w", err)
	}
	for i, o := range r.Outcomes {
		switch o.Class {
		case ClassAccepted, ClassRefused, ClassError, ClassUnknown:
		default:
			return nil, fmt.Errorf("read outcomes: outcomes[%d].class: want accepted, refused, error or unknown, got %q", i, o.Class)
		}
		if o.Class == ClassAccepted && o.OrderID == "" {
			return nil, fmt.Errorf("read outcomes: outcomes[%d]: accepted without an order_id", i)
		}
	}
	return &r, nil
}

// Count returns how many outcomes have class c (first submissions and duplicates).
func (r *Result) Count(c string) int {
	n := 0
	for _, o := range r.Outcomes {
		if o.Class == c {
			n++
		}
	}
	return n
}

// Reasons counts the outcomes of class c by reason.
func (r *Result) Reasons(c string) map[string]int {
	out := map[string]int{}
	for _, o := range r.Outcomes {
		if o.Class == c {
			out[o.Reason]++
		}
	}
	return out
}

// Run plays s against t and returns every outcome once every answer (retries and duplicates
// included) is in. Cancelling ctx stops new arrivals; requests in flight still finish.
func Run(ctx context.Context, s *Scenario, t Target, o Options) (*Result, error) {
	base, err := url.Parse(strings.TrimRight(t.BaseURL, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("api URL %q: want http(s)://host:port", t.BaseURL)
	}
	if t.Token == "" {
		return nil, errors.New("api token: want an API key with orders:write")
	}
	runID, err := newRunID()
	if err != nil {
		return nil, err
	}
	r := &runner{
		s: s, o: o, plan: newPlanner(s, runID), ordersURL: base.String() + "/v1/orders", token: t.Token,
		client: &http.Client{
			Timeout: s.RequestTimeout.Duration,
			Transport: &http.Transport{
				MaxIdleConnsPerHost: maxOpenWorkers,
				IdleConnTimeout:     time.Minute,
			},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		retry: map[int]bool{},
	}
	for _, st := range s.Retry.Statuses {
		r.retry[st] = true
	}
	defer r.client.CloseIdleConnections()
	return r.run(ctx, runID)
}

func newRunID() (string, error) {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("run id: %w", err)
	}
	return hex.EncodeToString(b), nil
}

type runner struct {
	s         *Scenario
	o         Options
	plan      *planner
	ordersURL string
	token     string
	client    *http.Client
	retry     map[int]bool

	tl       *timeline
	mu       sync.Mutex
	outcomes []Outcome
	extra    sync.WaitGroup // retries and duplicates
}

func (r *runner) run(ctx context.Context, runID string) (*Result, error) {
	atk := vegeta.NewAttacker(vegeta.Client(r.client), vegeta.MaxBody(16<<10),
		vegeta.Workers(64), vegeta.MaxWorkers(maxOpenWorkers))
	stop := context.AfterFunc(ctx, func() { atk.Stop() })
	defer stop()

	started := time.Now()
	r.tl = newTimeline(started)
	sampled := make(chan struct{})
	tickCtx, stopTicks := context.WithCancel(context.Background())
	go func() {
		defer close(sampled)
		r.sampleEverySecond(tickCtx)
	}()

	var next atomic.Int64
	targeter := func(tgt *vegeta.Target) error {
		n := int(next.Add(1) - 1)
		b := r.plan.buyer(n)
		r.tl.arrival(time.Now())
		tgt.Method = http.MethodPost
		// The fragment is never sent; it tells the result which buyer it belongs to.
		tgt.URL = r.ordersURL + "#" + strconv.Itoa(n)
		tgt.Body = b.Body
		tgt.Header = r.header(b)
		if b.Duplicate {
			r.extra.Add(1)
			go func() {
				defer r.extra.Done()
				r.duplicate(ctx, b)
			}()
		}
		return nil
	}
	for res := range atk.Attack(targeter, NewPacer(r.s), 0, r.s.Name) {
		n, err := strconv.Atoi(res.URL[strings.LastIndexByte(res.URL, '#')+1:])
		if err != nil {
			stopTicks()
			return nil, fmt.Errorf("result without a buyer number: %q", res.URL)
		}
		b := r.plan.buyer(n)
		a := answerOf(res)
		r.tl.answer(a)
		out := r.newOutcome(b, a.start, false)
		if r.retryable(a) && r.s.Retry.Max > 0 {
			r.extra.Add(1)
			go func() {
				defer r.extra.Done()
				r.finish(r.retryLoop(ctx, b, out, a))
			}()
			continue
		}
		r.finish(settle(out, a))
	}
	r.extra.Wait()
	stopTicks()
	<-sampled

	res := &Result{Scenario: r.s.Name, RunID: runID, Started: started, Outcomes: r.outcomes, Stock: r.s.Stock(), Promotions: r.s.PromotionIDs()}
	exp := r.s.Expect()
	res.Expected = &exp
	slices.SortFunc(res.Outcomes, func(a, b Outcome) int {
		if a.Buyer != b.Buyer {
			return a.Buyer - b.Buyer
		}
		if a.Duplicate == b.Duplicate {
			return 0
		}
		if a.Duplicate {
			return 1
		}
		return -1
	})
	var last time.Time
	for _, o := range res.Outcomes {
		if end := o.Start.Add(o.Elapsed); end.After(last) {
			last = end
		}
	}
	if !last.IsZero() {
		res.Elapsed = last.Sub(started)
	}
	res.Timeline = r.tl.samples(true)
	if r.o.Progress != nil {
		fmt.Fprintf(r.o.Progress, "done: %d submissions in %s: %d accepted, %d refused, %d errors, %d unknown\n",
			len(res.Outcomes), res.Elapsed.Round(time.Millisecond), res.Count(ClassAccepted), res.Count(ClassRefused),
			res.Count(ClassError), res.Count(ClassUnknown))
	}
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("run stopped early: %w", err)
	}
	return res, nil
}

func (r *runner) header(b Buyer) http.Header {
	return http.Header{
		"Authorization":   {"Bearer " + r.token},
		"Content-Type":    {"application/json"},
		"Idempotency-Key": {b.Key},
	}
}

func (r *runner) newOutcome(b Buyer, start time.Time, dup bool) Outcome {
	return Outcome{Buyer: b.N, IdempotencyKey: b.Key, CustomerID: b.CustomerID, Express: b.Express,
		Lines: b.Lines, Token: b.Token, Start: start, Duplicate: dup}
}

func (r *runner) finish(o Outcome) {
	r.mu.Lock()
	r.outcomes = append(r.outcomes, o)
	r.mu.Unlock()
}

// answer is one HTTP attempt's result.
type answer struct {
	start      time.Time
	latency    time.Duration
	status     int // 0: no answer
	class      string
	reason     string
	orderID    string
	short      []string
	retryAfter time.Duration // -1: none given
}

func answerOf(res *vegeta.Result) answer {
	a := answer{start: res.Timestamp, latency: res.Latency, status: int(res.Code), retryAfter: -1}
	if a.status == 0 {
		a.class, a.reason = ClassUnknown, shorten(res.Error)
		return a
	}
	a.classify(res.Body, res.Headers)
	return a
}

// classify sets class, reason, order id and Retry-After from an answer's body and headers.
func (a *answer) classify(body []byte, h http.Header) {
	switch a.status {
	case http.StatusAccepted:
		a.class = ClassAccepted
		var v struct {
			OrderID string `json:"order_id"`
		}
		if err := json.Unmarshal(body, &v); err != nil || v.OrderID == "" {
			a.class, a.reason = ClassError, "202 without an order_id"
		}
		a.orderID = v.OrderID
		return
	case http.StatusConflict, http.StatusUnprocessableEntity, http.StatusTooManyRequests, http.StatusServiceUnavailable:
		a.class = ClassRefused
	default:
		a.class = ClassError
	}
	a.reason = "http-" + strconv.Itoa(a.status)
	var p struct {
		Type  string `json:"type"`
		Short []struct {
			SKU string `json:"sku"`
		} `json:"short"`
	}
	if strings.HasPrefix(h.Get("Content-Type"), "application/problem+json") && json.Unmarshal(body, &p) == nil && p.Type != "" {
		a.reason = p.Type[strings.LastIndexByte(p.Type, '/')+1:]
		for _, sh := range p.Short {
			a.short = append(a.short, sh.SKU)
		}
	}
	if ra := h.Get("Retry-After"); ra != "" {
		if secs, err := strconv.Atoi(ra); err == nil && secs >= 0 {
			a.retryAfter = time.Duration(secs) * time.Second
		}
	}
}

func shorten(s string) string {
	if len(s) > 200 {
		return s[:200]
	}
	return s
}

// retryable reports whether a buyer retries after a: a configured status, or the answer that
// the same key is still in flight (a browser's second click learns to wait for the first).
func (r *runner) retryable(a answer) bool {
	return r.retry[a.status] || a.reason == "idempotency-key-in-flight"
}

// settle completes o with its final answer a.
func settle(o Outcome, a answer) Outcome {
	o.Class, o.Status, o.Reason, o.OrderID, o.Short = a.class, a.status, a.reason, a.orderID, a.short
	o.Latency = a.latency
	o.Elapsed = a.start.Add(a.latency).Sub(o.Start)
	o.Attempts = len(o.Tries) + 1
	return o
}

// retryLoop retries o (whose last answer was a) like a browser: after Retry-After (bounded by
// retry.max_wait) or retry.backoff, with the same key and body, at most retry.max times.
func (r *runner) retryLoop(ctx context.Context, b Buyer, o Outcome, a answer) Outcome {
	for len(o.Tries) < r.s.Retry.Max && r.retryable(a) {
		o.Tries = append(o.Tries, Try{Status: a.status, Reason: a.reason, Start: a.start, Latency: a.latency})
		wait := r.s.Retry.Backoff.Duration
		if a.retryAfter >= 0 {
			wait = min(a.retryAfter, r.s.Retry.MaxWait.Duration)
		}
		select {
		case <-ctx.Done():
			return settle(o, a)
		case <-time.After(wait):
		}
		a = r.send(b)
		r.tl.answer(a)
	}
	return settle(o, a)
}

// duplicate is a buyer's second submission with the same key and body.
func (r *runner) duplicate(ctx context.Context, b Buyer) {
	if b.DupDelay > 0 {
		select {
		case <-ctx.Done():
			return
		case <-time.After(b.DupDelay):
		}
	}
	a := r.send(b)
	r.tl.answer(a)
	o := r.newOutcome(b, a.start, true)
	if r.retryable(a) && r.s.Retry.Max > 0 {
		r.finish(r.retryLoop(ctx, b, o, a))
		return
	}
	r.finish(settle(o, a))
}

// send posts b's order once. It does not take the run's context: an attempt once sent is
// always seen through to its answer or the request timeout.
func (r *runner) send(b Buyer) answer {
	a := answer{start: time.Now(), retryAfter: -1}
	req, err := http.NewRequest(http.MethodPost, r.ordersURL, bytes.NewReader(b.Body))
	if err != nil {
		a.latency, a.class, a.reason = time.Since(a.start), ClassUnknown, shorten(err.Error())
		return a
	}
	req.Header = r.header(b)
	resp, err := r.client.Do(req)
	if err != nil {
		a.latency, a.class, a.reason = time.Since(a.start), ClassUnknown, shorten(err.Error())
		return a
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<10))
	resp.Body.Close()
	a.latency = time.Since(a.start)
	if err != nil {
		a.class, a.reason = ClassUnknown, shorten(err.Error())
		return a
	}
	a.status = resp.StatusCode
	a.classify(body, resp.Header)
	return a
}

// sampleEverySecond emits each second's sample once the next second is over (answers to
// requests of a second arrive during the following one), until ctx ends.
func (r *runner) sampleEverySecond(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for _, sm := range r.tl.samples(false) {
			if r.o.OnSample != nil {
				r.o.OnSample(sm)
			}
			if r.o.Progress != nil {
				fmt.Fprintf(r.o.Progress, "%4ds  arrivals %5.0f/s  requests %5.0f/s  accepted %5.0f  refused %5.0f  errors %4.0f  unknown %4.0f  p99 %s\n",
					int(sm.At/time.Second), sm.Offered, sm.Requests, sm.Accepted, sm.Refused, sm.Errors, sm.Unknown, sm.P99.Round(100*time.Microsecond))
			}
		}
	}
}
