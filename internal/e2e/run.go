package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/orderpipe/orderpipe/internal/checker"
	"github.com/orderpipe/orderpipe/internal/loadgen"
)

// RunOptions configures one scenario run.
type RunOptions struct {
	Env      Options   // the private environment (Bin at least)
	Progress io.Writer // one line per step and per second of load (nil: none)
	// Quiet is how long the pipeline must stay settled (lag 0, nothing pending) before the
	// checker runs, so periodic reconciliation (every 5s) has repaired what a fault left; 0: 12s.
	Quiet time.Duration
	// NoUndersell makes units left unsold while buyers were refused as out of stock a failure
	// (the standard flash sale's acceptance).
	NoUndersell bool
}

// RunResult is everything one scenario run produced.
type RunResult struct {
	Scenario   string            `json:"scenario"`
	Started    time.Time         `json:"started"`
	LoadTook   time.Duration     `json:"load_took_ns"`
	Settled    bool              `json:"settled"`
	SettleTook time.Duration     `json:"settle_took_ns"` // from the end of the load to settled
	Chaos      []ChaosRecord     `json:"chaos"`
	Lag        []LagSample       `json:"lag"`
	Events     []Event           `json:"process_events"`
	Decisions  []Decision        `json:"-"`
	Check      *checker.Report   `json:"check,omitempty"`
	CheckError string            `json:"check_error,omitempty"`
	Load       *loadgen.Result   `json:"-"`
	Machine    Machine           `json:"machine"`
	Summary    Summary           `json:"summary"`
	Extra      map[string]string `json:"extra,omitempty"`
	// NoUndersell is RunOptions.NoUndersell.
	NoUndersell bool `json:"no_undersell_required"`
}

// Decision is one order's way from acceptance to its terminal state in Postgres.
type Decision struct {
	OrderID  string
	Priority string
	Status   string
	Reason   string
	PlacedAt time.Time
	Decided  time.Time
}

// RunScenario starts a private environment, seeds s, starts the services, plays the load while
// executing the chaos steps at their offsets, samples lag, waits for settlement (lag 0 in every
// group and no order pending in Postgres, or s.Settle), checks every invariant and stops the
// environment. A result is returned whenever the load ran, also with an error.
func RunScenario(ctx context.Context, s *loadgen.Scenario, o RunOptions) (*RunResult, error) {
	progress := o.Progress
	if progress == nil {
		progress = io.Discard
	}
	steps, err := StepsOf(s)
	if err != nil {
		return nil, err
	}
	eo := o.Env
	eo.Progress = progress
	env, err := Start(ctx, eo)
	if err != nil {
		return nil, err
	}
	defer env.Close()
	if err := loadgen.Seed(ctx, env.Pool(), env.Store(), s); err != nil {
		return nil, err
	}
	if err := env.StartServices(ctx); err != nil {
		return nil, err
	}
	ss, err := env.Begin(ctx, s.Name, o.NoUndersell)
	if err != nil {
		return nil, err
	}
	defer ss.Close()
	res := ss.Result
	if err := ss.Play(ctx, s, steps, true, nil, progress); err != nil {
		ss.End()
		return res, err
	}
	quiet := o.Quiet
	if quiet == 0 {
		quiet = 12 * time.Second
	}
	ss.Settle(ctx, s.Settle.Duration, quiet, progress)
	ss.End()
	if res.Decisions, err = env.decisions(ctx, time.Time{}); err != nil {
		return res, err
	}
	rep, err := checker.Check(ctx, checker.Sources{
		Pool: env.Pool(), Redis: env.Redis(), Prefix: env.Prefix, Brokers: env.Brokers,
		PaymentURL: env.PaymentURL, MailURL: env.MailURL, Result: res.Load, Stock: res.Load.Stock,
	})
	if err != nil {
		res.CheckError = err.Error()
	}
	res.Check = rep
	res.Summary = Summarize(res)
	return res, nil
}

// StepsOf converts and validates a scenario's chaos steps, ordered by their offsets.
func StepsOf(s *loadgen.Scenario) ([]Step, error) {
	steps := make([]Step, 0, len(s.Chaos))
	for i, c := range s.Chaos {
		st := Step{At: c.At.Duration, For: c.For.Duration, Action: c.Action, Target: c.Target, Kind: c.Kind, Replicas: c.Replicas, Args: c.Args}
		if err := st.Validate(); err != nil {
			return nil, fmt.Errorf("scenario %s: chaos[%d]: %w", s.Name, i, err)
		}
		steps = append(steps, st)
	}
	sort.SliceStable(steps, func(i, j int) bool { return steps[i].At < steps[j].At })
	return steps, nil
}

// Session is one load played on a running environment, with lag sampled from Begin to End.
type Session struct {
	Result  *RunResult
	env     *Env
	meter   *lagMeter
	sampler *lagSampler
	start   time.Time
	mu      sync.Mutex
}

// Begin starts sampling lag every second; the session's clock starts now.
func (e *Env) Begin(ctx context.Context, name string, noUndersell bool) (*Session, error) {
	meter, err := newLagMeter(e.Brokers)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	return &Session{
		env: e, meter: meter, start: start, sampler: startLagSampler(meter, start, time.Second),
		Result: &RunResult{Scenario: name, Started: start.UTC(), Machine: DescribeMachine(ctx), Extra: map[string]string{}, NoUndersell: noUndersell},
	}, nil
}

// Play plays s against the environment's api while executing steps at their offsets (from the
// session's start) and, with feed, publishing warehouse stock events. It returns when the load
// and every step have ended.
func (ss *Session) Play(ctx context.Context, s *loadgen.Scenario, steps []Step, feed bool, during func(context.Context, *Env, time.Time), progress io.Writer) error {
	env, res := ss.env, ss.Result
	target := loadgen.Target{BaseURL: env.APIURL, Token: env.Token}
	if err := loadgen.WaitCatalog(ctx, target, s, 60*time.Second); err != nil {
		return err
	}
	if err := loadgen.SetUpPromotions(ctx, env.APIURL, env.CatalogToken, s, 60*time.Second, progress); err != nil {
		return err
	}
	start := time.Now()
	loadCtx, loadDone := context.WithCancel(ctx)
	defer loadDone()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for _, st := range steps {
			if wait := time.Until(start.Add(st.At)); wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			}
			fmt.Fprintf(progress, "e2e: chaos at %s: %s\n", time.Since(start).Round(time.Millisecond), st)
			rec := env.Do(ctx, st)
			rec.At = time.Since(ss.start) - rec.Took
			fmt.Fprintf(progress, "e2e: chaos done: %s (%s)%s\n", rec.Detail, rec.Took.Round(time.Millisecond), errSuffix(rec.Error))
			ss.mu.Lock()
			res.Chaos = append(res.Chaos, rec)
			ss.mu.Unlock()
		}
	}()
	if feed {
		f, err := newWarehouseFeed(env.Brokers, s)
		if err != nil {
			return err
		}
		if f != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sent, stale, ferr := f.run(loadCtx, 250*time.Millisecond)
				ss.mu.Lock()
				res.Extra["warehouse stock events published during the load"] = fmt.Sprintf("%d to inventory.stock (%d of them stale, which must change nothing)", sent, stale)
				if ferr != nil {
					res.Extra["warehouse feed error"] = ferr.Error()
				}
				ss.mu.Unlock()
			}()
		}
	}
	if during != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			during(loadCtx, env, start)
		}()
	}
	load, lerr := loadgen.Run(ctx, s, target, loadgen.Options{Progress: progress})
	loadDone()
	res.LoadTook = time.Since(start)
	wg.Wait() // chaos steps scheduled after the load still run (and end) before settling
	res.Load = load
	if lerr != nil {
		return fmt.Errorf("load: %w", lerr)
	}
	return nil
}

// Settle waits for the pipeline to settle (see RunScenario).
func (ss *Session) Settle(ctx context.Context, within, quiet time.Duration, progress io.Writer) {
	t := time.Now()
	ss.Result.Settled = ss.env.settle(ctx, ss.meter, within, quiet, progress)
	ss.Result.SettleTook = time.Since(t)
}

// End stops sampling lag and records the processes' events.
func (ss *Session) End() {
	if ss.sampler != nil {
		ss.Result.Lag = ss.sampler.finish()
		ss.sampler = nil
	}
	ss.Result.Events = ss.env.Sup.Events()
	for _, ex := range ss.env.Sup.UnexpectedExits() {
		ss.Result.Extra["unexpected exit "+ex.Proc] = ex.Detail
	}
}

// Close releases the session's Kafka client.
func (ss *Session) Close() {
	ss.End()
	ss.meter.close()
}

func errSuffix(e string) string {
	if e == "" {
		return ""
	}
	return " ERROR: " + e
}

// settle waits until every group's lag is 0 and no order is pending in Postgres, and stays so
// for quiet; it gives up after within.
func (e *Env) settle(ctx context.Context, m *lagMeter, within, quiet time.Duration, progress io.Writer) bool {
	if within <= 0 {
		within = 2 * time.Minute
	}
	deadline := time.Now().Add(within)
	var calmSince time.Time
	last := time.Time{}
	for time.Now().Before(deadline) && ctx.Err() == nil {
		lag, err := m.measure(ctx)
		pending := int64(-1)
		if err == nil {
			pending, err = e.pending(ctx)
		}
		total := int64(0)
		for _, l := range lag {
			total += l
		}
		if err == nil && total == 0 && pending == 0 {
			if calmSince.IsZero() {
				calmSince = time.Now()
			}
			if time.Since(calmSince) >= quiet {
				fmt.Fprintf(progress, "e2e: settled (lag 0, nothing pending for %s)\n", quiet)
				return true
			}
		} else {
			calmSince = time.Time{}
		}
		if time.Since(last) >= 5*time.Second {
			fmt.Fprintf(progress, "e2e: settling: lag %v, pending orders %d, err %v\n", lag, pending, err)
			last = time.Now()
		}
		sleep(ctx, time.Second)
	}
	fmt.Fprintf(progress, "e2e: NOT settled within %s\n", within)
	return false
}

func (e *Env) pending(ctx context.Context) (int64, error) {
	var n int64
	err := e.pool.QueryRow(ctx, `SELECT count(*) FROM orders WHERE status = 'pending'`).Scan(&n)
	return n, err
}

// decisions reads the acceptance and decision time of every order placed since since.
func (e *Env) decisions(ctx context.Context, since time.Time) ([]Decision, error) {
	rows, err := e.pool.Query(ctx, `SELECT id::text, priority, status, COALESCE(cancel_reason, ''), placed_at, decided_at FROM orders WHERE decided_at IS NOT NULL AND placed_at >= $1`, since)
	if err != nil {
		return nil, fmt.Errorf("read decisions: %w", err)
	}
	defer rows.Close()
	var out []Decision
	for rows.Next() {
		var d Decision
		if err := rows.Scan(&d.OrderID, &d.Priority, &d.Status, &d.Reason, &d.PlacedAt, &d.Decided); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// Machine describes where a run ran and how busy the machine was.
type Machine struct {
	CPUs    int     `json:"cpus"`
	Model   string  `json:"model"`
	Load1   float64 `json:"load1"` // /proc/loadavg when the run started
	Load5   float64 `json:"load5"`
	Load15  float64 `json:"load15"`
	MemMB   int64   `json:"mem_total_mb"`
	Kernel  string  `json:"kernel"`
	Started string  `json:"started"`
}

// DescribeMachine reads /proc for the report.
func DescribeMachine(context.Context) Machine {
	m := Machine{Model: "unknown", Started: time.Now().UTC().Format("2006-01-02 15:04 UTC")}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			switch strings.TrimSpace(k) {
			case "model name":
				if m.Model == "unknown" {
					m.Model = strings.TrimSpace(v)
				}
			case "processor":
				m.CPUs++
			}
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) >= 3 {
			m.Load1, _ = strconv.ParseFloat(f[0], 64)
			m.Load5, _ = strconv.ParseFloat(f[1], 64)
			m.Load15, _ = strconv.ParseFloat(f[2], 64)
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				m.MemMB = kb / 1024
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// RSS returns the resident set size of pid in bytes (from /proc/<pid>/status).
func RSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}
