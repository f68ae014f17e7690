package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/orderpipe/orderpipe/internal/loadgen"
)

// MeasureOptions configures the measurements.
type MeasureOptions struct {
	Scenario *loadgen.Scenario // the catalog, order mix and payment behaviour measured (flash-sale)
	Bin      string
	Keep     bool
	Workers  int
	Progress io.Writer
	// Step is the length of each step of the saturation searches (default 5s).
	Step time.Duration
	// Overload and Burst scale the long measurements down for tests (defaults 60s and 30s).
	Overload, Burst time.Duration
}

// SatStep is one step of a saturation search.
type SatStep struct {
	Rate       float64       `json:"rate"`
	Arrivals   int           `json:"arrivals"`
	Decided    int           `json:"decided"` // answered 202 or 409 out of stock: a decision
	Other      int           `json:"other"`   // any other answer or none
	PerSecond  float64       `json:"decisions_per_second"`
	P99        time.Duration `json:"p99_ns"`
	Sustained  bool          `json:"sustained"`
	CriticalAt int64         `json:"critical_lag_after"` // the pipeline's backlog when the step ended
}

// Saturation is one arm's search.
type Saturation struct {
	Arm       string    `json:"arm"`
	Steps     []SatStep `json:"steps"`
	PerSecond float64   `json:"saturation_decisions_per_second"` // best sustained step
	Oversold  int64     `json:"oversold_units"`
	Check     string    `json:"oversell_check"`
}

// Overload is a 2x overload measurement.
type Overload struct {
	Of               string         `json:"of"` // what is doubled: "the sustainable rate" or "the intake's saturation"
	RateLimit        int            `json:"rate_limit_per_second"`
	NormalRate       float64        `json:"normal_rate"`
	OverloadRate     float64        `json:"overload_rate"`
	For              time.Duration  `json:"for_ns"`
	Statuses         map[int]int    `json:"statuses_during_overload"`
	Other5xx         int            `json:"other_5xx"`
	Unknown          int            `json:"unknown"`
	Refusals         Percentiles    `json:"refusal_latency"`
	AcceptedDuring   Percentiles    `json:"accepted_latency_during"`
	NormalP99        time.Duration  `json:"normal_p99_ns"` // of 202s in the lead-in
	RecoveredAfter   time.Duration  `json:"recovered_after_ns"`
	Recovered        bool           `json:"recovered"`
	RSSBefore        int64          `json:"api_rss_before_bytes"`
	RSSMax           int64          `json:"api_rss_max_bytes"`
	RSSAfter         int64          `json:"api_rss_after_bytes"`
	PerSecondP99     []SecondP99    `json:"per_second_p99"`
	Sent             float64        `json:"sent_during_overload_per_second"`
	RefusalsByReason map[string]int `json:"refusals_by_reason"`
}

// SecondP99 is the p99 of the 202 answers of requests sent in one second.
type SecondP99 struct {
	At  time.Duration `json:"at_ns"`
	N   int           `json:"n"`
	P99 time.Duration `json:"p99_ns"`
}

// CatchUp is the 5x burst measurement.
type CatchUp struct {
	BaseRate        float64       `json:"base_rate"`
	BurstRate       float64       `json:"burst_rate"`
	Burst           time.Duration `json:"burst_ns"`
	PeakCriticalLag int64         `json:"peak_critical_lag"`
	PeakLowLag      int64         `json:"peak_low_priority_lag"`
	// Level is the critical lag the base rate itself keeps in flight (the highest sample of the
	// lead-in, at least one second of arrivals): under steady arrivals the lag is a few batches,
	// never exactly 0, so "back to zero" under load means back to this level.
	Level int64 `json:"steady_level"`
	// ToLevel is from the burst's end until the critical lag was back at Level; LowToLevel the
	// same for the low-priority groups; ToZeroAfterLoad from the end of the load until both
	// were exactly 0.
	ToLevel         time.Duration `json:"to_level_ns"`
	ReachedLevel    bool          `json:"reached_level"`
	LowToLevel      time.Duration `json:"low_priority_to_level_ns"`
	LowReachedLevel bool          `json:"low_priority_reached_level"`
	ToZeroAfterLoad time.Duration `json:"to_zero_after_load_ns"`
	ReachedZero     bool          `json:"reached_zero_after_load"`
	BurstEnd        time.Duration `json:"burst_end_ns"`
	Accepted        int           `json:"accepted"`
	Refused         int           `json:"refused"`
	Others          int           `json:"others"`
	Lag             []LagSample   `json:"lag"`
}

// Measurements are the "Measure" section, measured in one environment.
type Measurements struct {
	Began            time.Time     `json:"began"`
	Took             time.Duration `json:"took_ns"`
	Machine          Machine       `json:"machine"`
	Pipeline         Saturation    `json:"pipeline"`
	Naive            Saturation    `json:"naive"`
	WorkerCapacity   float64       `json:"worker_decisions_per_second"`
	EndToEnd         []E2EStep     `json:"end_to_end_steps"`
	Sustainable      float64       `json:"sustainable_rate"` // the highest rate the critical groups keep up with
	ConfirmRate      float64       `json:"confirm_rate"`
	AcceptToConfirm  Percentiles   `json:"accept_to_confirm"`
	ConfirmStandard  Percentiles   `json:"accept_to_confirm_standard"`
	ConfirmExpress   Percentiles   `json:"accept_to_confirm_express"`
	ConfirmIntake    Percentiles   `json:"confirm_run_intake_latency"`
	ConfirmAccepted  int           `json:"confirm_run_accepted"`
	Overload         *Overload     `json:"overload,omitempty"`         // twice the sustainable rate
	Flood            *Overload     `json:"front_door_flood,omitempty"` // twice the intake's saturation
	CatchUp          *CatchUp      `json:"catch_up,omitempty"`
	PaymentLatency   string        `json:"payment_latency"`
	Errors           []string      `json:"errors,omitempty"`
	SaturationStep   time.Duration `json:"saturation_step_ns"`
	MeasuredScenario string        `json:"scenario"`
}

// WriteJSON writes the measurements to path.
func (m *Measurements) WriteJSON(path string) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// measureScenario is base with stock no run can sell out (every answer is a real reservation,
// not the sold-out fast path), no duplicates or retries (the answers are counted as the server
// gave them), no slow or hanging payment tokens (payments take the simulator's 50-150 ms), no
// chaos, and the arrival phases given.
func measureScenario(base *loadgen.Scenario, name string, phases ...loadgen.Phase) *loadgen.Scenario {
	s := *base
	s.Name = name
	s.Catalog.Hot = append([]loadgen.HotSKU(nil), base.Catalog.Hot...)
	for i := range s.Catalog.Hot {
		s.Catalog.Hot[i].Stock = 10_000_000
	}
	s.Catalog.Background.Stock = 10_000_000
	s.Arrival = phases
	s.Buyers = 0
	s.Duplicates = 0
	s.Retry = loadgen.Retry{}
	s.Chaos = nil
	s.Payment = loadgen.Payment{Decline: base.Payment.Decline}
	return &s
}

func hold(rate float64, d time.Duration) loadgen.Phase {
	return loadgen.Phase{Phase: "hold", Rate: rate, For: loadgen.Duration{Duration: d}}
}

func ramp(from, to float64, d time.Duration) loadgen.Phase {
	return loadgen.Phase{Phase: "ramp", From: from, To: to, For: loadgen.Duration{Duration: d}}
}

// Measure runs the measurements in one private environment with payments taking 50-150 ms.
func Measure(ctx context.Context, o MeasureOptions) (*Measurements, error) {
	if o.Step <= 0 {
		o.Step = 5 * time.Second
	}
	if o.Overload <= 0 {
		o.Overload = 60 * time.Second
	}
	if o.Burst <= 0 {
		o.Burst = 30 * time.Second
	}
	progress := o.Progress
	if progress == nil {
		progress = io.Discard
	}
	say := func(f string, a ...any) { fmt.Fprintf(progress, "measure: "+f+"\n", a...) }
	m := &Measurements{Began: time.Now().UTC(), Machine: DescribeMachine(ctx), PaymentLatency: "50-150 ms (paysim --latency 50ms --jitter 100ms)", SaturationStep: o.Step, MeasuredScenario: o.Scenario.Name}
	defer func() { m.Took = time.Since(m.Began) }()
	base := measureScenario(o.Scenario, o.Scenario.Name+"-measure", hold(10, time.Second))
	env, err := Start(ctx, Options{Bin: o.Bin, Keep: o.Keep, Workers: o.Workers, PaymentLatency: 50 * time.Millisecond,
		PaymentJitter: 100 * time.Millisecond, DeclineRate: 0.01, FaultRate: 0, Progress: progress})
	if err != nil {
		return nil, err
	}
	defer env.Close()
	if err := loadgen.Seed(ctx, env.Pool(), env.Store(), base); err != nil {
		return nil, err
	}
	if err := env.StartServices(ctx); err != nil {
		return nil, err
	}
	target := loadgen.Target{BaseURL: env.APIURL, Token: env.Token}
	if err := loadgen.WaitCatalog(ctx, target, base, 60*time.Second); err != nil {
		return nil, err
	}
	if err := loadgen.SetUpPromotions(ctx, env.APIURL, env.CatalogToken, base, 60*time.Second, progress); err != nil {
		return nil, err
	}
	meter, err := newLagMeter(env.Brokers)
	if err != nil {
		return nil, err
	}
	defer meter.close()
	drain := func(within time.Duration) int64 {
		deadline := time.Now().Add(within)
		for {
			lag, err := meter.measure(ctx)
			crit := lag["order-worker"] + lag["inventory-sync"]
			if (err == nil && crit == 0) || time.Now().After(deadline) || ctx.Err() != nil {
				return crit
			}
			sleep(ctx, 500*time.Millisecond)
		}
	}

	// 1. Saturation of the pipeline's intake (the workers run beside it, as in production).
	say("saturation search: orderpipe (steps of %s)", o.Step)
	searchStart := time.Now()
	m.Pipeline = search(ctx, "orderpipe", base, target, o.Step, say, func() int64 { return drain(45 * time.Second) })
	m.Pipeline.Check = "invariants of the pipeline are checked by the flash-sale and chaos runs; here the oversell guard (I1) is read from Postgres"
	if n, err := env.oversoldPG(ctx); err == nil {
		m.Pipeline.Oversold = n
	} else {
		m.Errors = append(m.Errors, "pipeline oversell check: "+err.Error())
	}
	if drain(90*time.Second) != 0 {
		m.Errors = append(m.Errors, "the pipeline did not drain within 90s after the saturation search")
	}
	m.WorkerCapacity, err = env.peakDecisionRate(ctx, searchStart, 10)
	if err != nil {
		m.Errors = append(m.Errors, "worker capacity: "+err.Error())
	}

	// 2. The naive design on the same scenario, same load generator, same Postgres.
	say("saturation search: naive Postgres row-lock design")
	stock := map[string]int64{}
	for _, p := range base.Products() {
		stock[p.SKU] = p.Stock
	}
	nv, err := startNaive(ctx, env.DatabaseURL, stock)
	if err != nil {
		m.Errors = append(m.Errors, "naive: "+err.Error())
	} else {
		m.Naive = search(ctx, "naive", base, loadgen.Target{BaseURL: nv.URL, Token: env.Token}, o.Step, say, func() int64 { return 0 })
		over, err := nv.oversold(ctx)
		switch {
		case err != nil:
			m.Naive.Check = "failed: " + err.Error()
		case len(over) == 0:
			m.Naive.Check = "passed"
		default:
			for _, v := range over {
				m.Naive.Oversold += v
			}
			m.Naive.Check = fmt.Sprintf("FAILED: %v", over)
		}
		nv.close()
	}
	// 3. The sustainable rate: the highest rate (from 80% of min(intake saturation, worker
	// capacity) down in steps of 0.75x) at which the critical groups keep up while the intake,
	// the load generator and every consumer share the machine, for 15 s.
	start := m.Pipeline.PerSecond
	if m.WorkerCapacity > 0 && m.WorkerCapacity < start {
		start = m.WorkerCapacity
	}
	for rate := math.Round(0.8 * start); rate >= 20 && len(m.EndToEnd) < 5 && ctx.Err() == nil; rate = math.Round(rate * 0.75) {
		st := endToEndStep(ctx, env, meter, base, target, rate, 15*time.Second)
		m.EndToEnd = append(m.EndToEnd, st)
		say("end to end at %.0f/s: %d accepted, critical lag at the end %d, decided during the hold %.0f/s, sustained %v", rate, st.Accepted, st.LagAtEnd, st.DecidedPerSecond, st.Sustained)
		drain(120 * time.Second)
		if st.Sustained {
			m.Sustainable = rate
			break
		}
	}
	if m.Sustainable <= 0 {
		return m, fmt.Errorf("no sustainable end-to-end rate found; cannot scale the remaining measurements")
	}

	// 3. Accept-to-confirm at 50% of saturation.
	m.ConfirmRate = math.Round(m.Sustainable / 2)
	say("accept-to-confirm at %.0f orders/s (50%% of the sustainable %.0f/s)", m.ConfirmRate, m.Sustainable)
	s := measureScenario(o.Scenario, "confirm", ramp(m.ConfirmRate/4, m.ConfirmRate, 3*time.Second), hold(m.ConfirmRate, 30*time.Second))
	t0 := time.Now()
	res, err := loadgen.Run(ctx, s, target, loadgen.Options{})
	if err != nil {
		m.Errors = append(m.Errors, "accept-to-confirm load: "+err.Error())
	} else {
		drain(120 * time.Second)
		sleep(ctx, 2*time.Second)
		ds, err := env.decisions(ctx, t0)
		if err != nil {
			m.Errors = append(m.Errors, err.Error())
		}
		var conf, std, exp []time.Duration
		for _, d := range ds {
			if d.Status == "confirmed" {
				lat := d.Decided.Sub(d.PlacedAt)
				conf = append(conf, lat)
				if d.Priority == "express" {
					exp = append(exp, lat)
				} else {
					std = append(std, lat)
				}
			}
		}
		m.AcceptToConfirm, m.ConfirmStandard, m.ConfirmExpress = PercentilesOf(conf), PercentilesOf(std), PercentilesOf(exp)
		var intake []time.Duration
		for _, oc := range res.Outcomes {
			if oc.Class == loadgen.ClassAccepted {
				m.ConfirmAccepted++
				intake = append(intake, oc.Latency)
			}
		}
		m.ConfirmIntake = PercentilesOf(intake)
	}

	// 4. 2x overload for 60 s with the rate limit at the sustainable rate: twice what the
	// pipeline sustains (the rate accept-to-confirm is measured against), then twice what the
	// intake alone decides, which floods the api and the load generator on these CPUs.
	limit := int(m.Sustainable)
	if err := env.Reconfigure(ctx, "api", map[string]string{"RATE_LIMIT_PER_SECOND": strconv.Itoa(limit), "RATE_LIMIT_BURST": strconv.Itoa(limit)}); err != nil {
		return m, err
	}
	if err := loadgen.WaitCatalog(ctx, target, base, 60*time.Second); err != nil {
		return m, err
	}
	say("overload: rate limit %d/s, %.0f/s (twice the sustainable rate) for %s", limit, 2*m.Sustainable, o.Overload)
	m.Overload = env.overload(ctx, o.Scenario, target, "the sustainable rate", m.Sustainable, 2*m.Sustainable, limit, o.Overload, say)
	drain(120 * time.Second)
	say("overload: rate limit %d/s, %.0f/s (twice the intake's saturation) for %s", limit, 2*m.Pipeline.PerSecond, o.Overload)
	m.Flood = env.overload(ctx, o.Scenario, target, "the intake's saturation", m.Sustainable, 2*m.Pipeline.PerSecond, limit, o.Overload, say)
	drain(120 * time.Second)

	// 5. Catch-up after a 5x burst of 30 s (rate limit off: the api accepts what it can).
	if err := env.Reconfigure(ctx, "api", map[string]string{"RATE_LIMIT_PER_SECOND": "0", "RATE_LIMIT_BURST": ""}); err != nil {
		return m, err
	}
	if err := loadgen.WaitCatalog(ctx, target, base, 60*time.Second); err != nil {
		return m, err
	}
	m.CatchUp = env.catchUp(ctx, o.Scenario, target, meter, math.Round(0.4*m.Sustainable), o.Burst, say)
	return m, nil
}

// E2EStep is one step of the search for the sustainable rate.
type E2EStep struct {
	Rate             float64 `json:"rate"`
	Accepted         int     `json:"accepted"`
	DecidedPerSecond float64 `json:"decided_per_second"` // orders placed and decided within the hold, per second
	LagAtEnd         int64   `json:"critical_lag_at_end"`
	Sustained        bool    `json:"sustained"`
}

// endToEndStep holds rate for d and judges whether the order workers kept up: at the end the
// critical lag is at most two seconds of arrivals, and at least 90% of the orders accepted in the
// first half of the hold were decided before it ended.
func endToEndStep(ctx context.Context, env *Env, meter *lagMeter, base *loadgen.Scenario, t loadgen.Target, rate float64, d time.Duration) E2EStep {
	st := E2EStep{Rate: rate}
	s := measureScenario(base, fmt.Sprintf("e2e-%.0f", rate), hold(rate, d))
	t0 := time.Now()
	res, err := loadgen.Run(ctx, s, t, loadgen.Options{})
	if err != nil {
		return st
	}
	lag, _ := meter.measure(ctx)
	st.LagAtEnd = lag["order-worker"] + lag["inventory-sync"]
	end := res.Started.Add(d)
	var early int
	for _, o := range res.Outcomes {
		if o.Class == loadgen.ClassAccepted {
			st.Accepted++
			if o.Start.Before(res.Started.Add(d / 2)) {
				early++
			}
		}
	}
	ds, _ := env.decisions(ctx, t0)
	var decidedEarly, decided int
	for _, x := range ds {
		if x.Decided.Before(end) {
			decided++
			if x.PlacedAt.Before(res.Started.Add(d / 2)) {
				decidedEarly++
			}
		}
	}
	st.DecidedPerSecond = float64(decided) / d.Seconds()
	st.Sustained = st.LagAtEnd <= int64(2*rate) && early > 0 && float64(decidedEarly) >= 0.9*float64(early)
	return st
}

// search finds the highest arrival rate the target sustains: steps from 250/s growing by 1.6x
// until one is not sustained, then one bisection step.
func search(ctx context.Context, arm string, base *loadgen.Scenario, t loadgen.Target, step time.Duration, say func(string, ...any), between func() int64) Saturation {
	sat := Saturation{Arm: arm}
	run := func(rate float64) SatStep {
		s := measureScenario(base, fmt.Sprintf("%s-%0.f", arm, rate), hold(rate, step))
		res, err := loadgen.Run(ctx, s, t, loadgen.Options{})
		st := SatStep{Rate: rate}
		if err != nil {
			say("%s at %.0f/s: %v", arm, rate, err)
			return st
		}
		var lat []time.Duration
		for _, o := range res.Outcomes {
			st.Arrivals++
			if o.Class == loadgen.ClassAccepted || (o.Class == loadgen.ClassRefused && o.Reason == "out-of-stock") {
				st.Decided++
				lat = append(lat, o.Latency)
			} else {
				st.Other++
			}
		}
		st.P99 = PercentilesOf(lat).P99
		st.PerSecond = float64(st.Decided) / step.Seconds()
		want := rate * step.Seconds()
		st.Sustained = st.Decided >= int(0.99*float64(st.Arrivals)) && float64(st.Arrivals) >= 0.97*want && st.P99 <= 100*time.Millisecond
		st.CriticalAt = between()
		say("%s at %.0f/s: %d arrivals, %d decided (%.0f/s), p99 %s, sustained %v, backlog after %d", arm, rate, st.Arrivals, st.Decided, st.PerSecond, ms(st.P99), st.Sustained, st.CriticalAt)
		return st
	}
	good, bad := 0.0, 0.0
	for rate := 250.0; rate < 20000 && ctx.Err() == nil; rate = math.Round(rate * 1.6) {
		st := run(rate)
		sat.Steps = append(sat.Steps, st)
		if !st.Sustained {
			bad = rate
			break
		}
		good = rate
		sat.PerSecond = math.Max(sat.PerSecond, st.PerSecond)
	}
	if bad > 0 && good > 0 && ctx.Err() == nil {
		st := run(math.Round((good + bad) / 2))
		sat.Steps = append(sat.Steps, st)
		if st.Sustained {
			sat.PerSecond = math.Max(sat.PerSecond, st.PerSecond)
		}
	}
	return sat
}

// oversoldPG is the units allocated beyond on_hand over every SKU (the pipeline's guard, I1).
func (e *Env) oversoldPG(ctx context.Context) (int64, error) {
	var n int64
	err := e.pool.QueryRow(ctx, `SELECT COALESCE(sum(allocated - on_hand), 0) FROM stock WHERE allocated > on_hand`).Scan(&n)
	return n, err
}

// peakDecisionRate is the highest rate of orders decided (Postgres decided_at) over any window
// of w seconds since since: what the order workers manage when they have a backlog.
func (e *Env) peakDecisionRate(ctx context.Context, since time.Time, w int) (float64, error) {
	rows, err := e.pool.Query(ctx, `SELECT extract(epoch FROM date_trunc('second', decided_at))::bigint, count(*) FROM orders WHERE decided_at >= $1 GROUP BY 1 ORDER BY 1`, since)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	per := map[int64]int64{}
	var first, last int64
	for rows.Next() {
		var sec, n int64
		if err := rows.Scan(&sec, &n); err != nil {
			return 0, err
		}
		if first == 0 {
			first = sec
		}
		per[sec], last = n, sec
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	best := 0.0
	for s := first; s+int64(w)-1 <= last; s++ {
		var sum int64
		for i := range int64(w) {
			sum += per[s+i]
		}
		best = math.Max(best, float64(sum)/float64(w))
	}
	return best, nil
}

// overload plays half the sustainable rate, then over (twice what of names) for d, then half the
// sustainable rate again, with the api's rate limit at limit.
func (e *Env) overload(ctx context.Context, base *loadgen.Scenario, t loadgen.Target, of string, sustainable, over float64, limit int, d time.Duration, say func(string, ...any)) *Overload {
	normal, over := math.Round(sustainable/2), math.Round(over)
	lead, tail := 15*time.Second, 20*time.Second
	s := measureScenario(base, "overload", hold(normal, lead), hold(over, d), hold(normal, tail))
	ov := &Overload{Of: of, RateLimit: limit, NormalRate: normal, OverloadRate: over, For: d, Statuses: map[int]int{}, RefusalsByReason: map[string]int{}}
	var mu sync.Mutex
	var rss []int64
	sctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for sctx.Err() == nil {
			if p, ok := e.Sup.Get("api"); ok {
				if v, err := RSS(p.PID()); err == nil {
					mu.Lock()
					rss = append(rss, v)
					mu.Unlock()
				}
			}
			sleep(sctx, 500*time.Millisecond)
		}
	}()
	res, err := loadgen.Run(ctx, s, t, loadgen.Options{})
	stop()
	wg.Wait()
	if err != nil {
		say("overload: %v", err)
		return ov
	}
	begin := res.Started.Add(lead)
	end := begin.Add(d)
	var refusals, acceptedDuring, normal202 []time.Duration
	perSec := map[int][]time.Duration{}
	sent := 0
	for _, o := range res.Outcomes {
		switch {
		case o.Start.Before(begin):
			if o.Class == loadgen.ClassAccepted {
				normal202 = append(normal202, o.Latency)
			}
		case o.Start.Before(end):
			sent++
			ov.Statuses[o.Status]++
			if o.Status >= 500 && o.Status != 503 {
				ov.Other5xx++
			}
			if o.Class == loadgen.ClassUnknown {
				ov.Unknown++
			}
			if o.Status == 429 || o.Status == 503 {
				refusals = append(refusals, o.Latency)
				ov.RefusalsByReason[o.Reason]++
			}
			if o.Class == loadgen.ClassAccepted {
				acceptedDuring = append(acceptedDuring, o.Latency)
			}
		}
		if o.Class == loadgen.ClassAccepted {
			sec := int(o.Start.Sub(res.Started) / time.Second)
			perSec[sec] = append(perSec[sec], o.Latency)
		}
	}
	ov.Sent = float64(sent) / d.Seconds()
	ov.Refusals, ov.AcceptedDuring = PercentilesOf(refusals), PercentilesOf(acceptedDuring)
	ov.NormalP99 = PercentilesOf(normal202).P99
	secs := make([]int, 0, len(perSec))
	for s := range perSec {
		secs = append(secs, s)
	}
	sort.Ints(secs)
	for _, s := range secs {
		ov.PerSecondP99 = append(ov.PerSecondP99, SecondP99{At: time.Duration(s) * time.Second, N: len(perSec[s]), P99: PercentilesOf(perSec[s]).P99})
	}
	// Recovered: the first second after the overload from which every 5-second window's p99
	// of 202 answers (by sending time) stays within twice the lead-in's p99 (at least +5 ms).
	// Windows, not single seconds: at the tail's rate one slow answer would be a second's p99.
	bound := max(2*ov.NormalP99, ov.NormalP99+5*time.Millisecond)
	endSec := int((lead + d) / time.Second)
	lastSec := int((lead + d + tail) / time.Second)
	window := func(from int) (time.Duration, bool) {
		var ds []time.Duration
		for s := from; s < from+5 && s < lastSec; s++ {
			ds = append(ds, perSec[s]...)
		}
		return PercentilesOf(ds).P99, len(ds) > 0
	}
	for s := endSec; s+5 <= lastSec; s++ {
		ok := true
		for w := s; w+5 <= lastSec; w++ {
			if p, has := window(w); has && p > bound {
				ok = false
				break
			}
		}
		if ok {
			ov.Recovered, ov.RecoveredAfter = true, time.Duration(s-endSec)*time.Second
			break
		}
	}
	mu.Lock()
	defer mu.Unlock()
	leadSamples := int(lead / (500 * time.Millisecond))
	for i, v := range rss {
		ov.RSSMax = max(ov.RSSMax, v)
		if i < leadSamples {
			ov.RSSBefore = max(ov.RSSBefore, v)
		}
	}
	if len(rss) > 0 {
		ov.RSSAfter = rss[len(rss)-1]
	}
	say("overload: sent %.0f/s during it, statuses %v, refusal p99 %s, recovered %v after %s, api RSS %d -> %d MB max", ov.Sent, ov.Statuses, ms(ov.Refusals.P99), ov.Recovered, ov.RecoveredAfter, ov.RSSBefore>>20, ov.RSSMax>>20)
	return ov
}

func (e *Env) catchUp(ctx context.Context, base *loadgen.Scenario, t loadgen.Target, meter *lagMeter, b float64, burst time.Duration, say func(string, ...any)) *CatchUp {
	lead, tail := 10*time.Second, 60*time.Second
	c := &CatchUp{BaseRate: b, BurstRate: 5 * b, Burst: burst}
	say("catch-up: %.0f/s, then %.0f/s for %s, then %.0f/s for %s", b, 5*b, burst, b, tail)
	s := measureScenario(base, "catch-up", hold(b, lead), hold(5*b, burst), hold(b, tail))
	start := time.Now()
	sampler := startLagSampler(meter, start, time.Second)
	res, err := loadgen.Run(ctx, s, t, loadgen.Options{})
	if err == nil {
		// Keep observing until both lags are 0, at most 90 s after the load.
		loadEnd := time.Now()
		deadline := loadEnd.Add(90 * time.Second)
		for time.Now().Before(deadline) && ctx.Err() == nil {
			lag, err := meter.measure(ctx)
			if err == nil && lag["order-worker"]+lag["inventory-sync"] == 0 && lag["notifier"]+lag["reports"] == 0 {
				c.ReachedZero, c.ToZeroAfterLoad = true, time.Since(loadEnd)
				break
			}
			sleep(ctx, time.Second)
		}
	}
	c.Lag = sampler.finish()
	if err != nil {
		say("catch-up: %v", err)
		return c
	}
	for _, o := range res.Outcomes {
		switch o.Class {
		case loadgen.ClassAccepted:
			c.Accepted++
		case loadgen.ClassRefused:
			c.Refused++
		default:
			c.Others++
		}
	}
	burstStart := res.Started.Add(lead).Sub(start)
	burstEnd := res.Started.Add(lead + burst).Sub(start)
	c.BurstEnd = burstEnd
	c.Level = int64(b)
	lowLevel := int64(b)
	for _, l := range c.Lag {
		if l.At < burstStart && l.Lag["order-worker"] >= 0 {
			c.Level = max(c.Level, l.Lag["order-worker"]+l.Lag["inventory-sync"])
			lowLevel = max(lowLevel, l.Lag["notifier"]+l.Lag["reports"])
		}
	}
	lowPeaked := false
	for _, l := range c.Lag {
		if l.Lag["order-worker"] < 0 {
			continue
		}
		crit, low := l.Lag["order-worker"]+l.Lag["inventory-sync"], l.Lag["notifier"]+l.Lag["reports"]
		c.PeakCriticalLag, c.PeakLowLag = max(c.PeakCriticalLag, crit), max(c.PeakLowLag, low)
		if l.At >= burstStart && low > lowLevel {
			lowPeaked = true
		}
		if l.At < burstEnd {
			continue
		}
		if !c.ReachedLevel && crit <= c.Level {
			c.ReachedLevel, c.ToLevel = true, l.At-burstEnd
		}
		if !c.LowReachedLevel && (lowPeaked || low > lowLevel) && low <= lowLevel {
			c.LowReachedLevel, c.LowToLevel = true, l.At-burstEnd
		}
		if low > lowLevel {
			lowPeaked = true
		}
	}
	if !lowPeaked {
		c.LowReachedLevel = true // the low-priority groups never fell behind
	}
	say("catch-up: peak critical lag %d (steady level %d), back to it %s after the burst (%v); both lags 0 %s after the load (%v)", c.PeakCriticalLag, c.Level, c.ToLevel, c.ReachedLevel, c.ToZeroAfterLoad, c.ReachedZero)
	return c
}
