// Package bench is the intake benchmark behind `make bench`. It measures POST /v1/orders of the
// real api (api.Run in this process, against Postgres, Redis and an in-process kfake broker)
// beside two baselines measured in the same run on the same machine: a bare Echo handler that
// decodes the same body and answers 202 (the HTTP ceiling), and the naive design (one Postgres
// transaction per order locking one hot SKU row). Every arm is measured at saturation and at a
// fixed open-model arrival rate, its books are checked for oversell, the process is CPU-profiled
// during the intake saturation run, and the result is rendered as a Markdown section of
// docs/benchmarks.md.
package bench

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/orderpipe/orderpipe/internal/config"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/redisstore"
)

// hotSKU is the one SKU every order of every arm buys.
const hotSKU = "BENCH-HOT-1"

// Config says where the infrastructure is and how long and hard to push.
type Config struct {
	// DatabaseURL is the Postgres database; the benchmark creates two fresh schemas in it (one
	// migrated for the api, one for the naive design) and drops them at the end.
	DatabaseURL string
	// Redis is the Redis connection (a single node); keys live under a fresh prefix and are
	// deleted at the end.
	Redis config.Redis
	// Duration is the length of each measured run (saturation, open model). Default 10s.
	Duration time.Duration
	// Rate is the open-model arrival rate (orders/s) of every arm; 0 means 80% of the arm's own
	// saturation throughput.
	Rate int
	// Workers is the number of requests kept in flight by the saturation runs. Default 64.
	Workers int
	// NaivePool is the Postgres pool size of the naive design. Default 16.
	NaivePool int32
	// Stock is the hot SKU's stock in both stocked arms. Default 100,000,000 (never sells out).
	Stock int64
	// CPUProfile keeps the CPU profile of the intake's closed-loop run at this path; empty keeps
	// it only while the report is made.
	CPUProfile string
	// Trace keeps a runtime execution trace (go tool trace) of the full intake's open-model run
	// at this path; empty records none. For finding where the latency tail comes from: GC
	// pauses, goroutines waiting for a CPU, blocking.
	Trace string
	// Command is the command line the report says produced it.
	Command string
	// Progress receives a line per run; nil discards them.
	Progress io.Writer
}

func (c *Config) defaults() error {
	c.Duration = cmp.Or(c.Duration, 10*time.Second)
	c.Workers = cmp.Or(c.Workers, 64)
	c.NaivePool = cmp.Or(c.NaivePool, 16)
	c.Stock = cmp.Or(c.Stock, 100_000_000)
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	switch {
	case c.DatabaseURL == "":
		return errors.New("bench: no database URL")
	case len(c.Redis.RedisAddrs) != 1:
		return fmt.Errorf("bench: want exactly one Redis address, got %q", c.Redis.RedisAddrs)
	case c.Duration < 500*time.Millisecond:
		return fmt.Errorf("bench: duration %s, want at least 500ms", c.Duration)
	case c.Rate < 0 || c.Workers < 1 || c.NaivePool < 1 || c.Stock < 1:
		return fmt.Errorf("bench: rate %d, workers %d, naive pool %d, stock %d: want rate >= 0 and the others >= 1", c.Rate, c.Workers, c.NaivePool, c.Stock)
	}
	return nil
}

// orderBody is the order every arm is sent: one unit of sku.
func orderBody(sku string) []byte {
	b, _ := json.Marshal(map[string]any{ // a fixed document: cannot fail
		"customer_id": "cust-bench-1",
		"email":       "bench@example.com",
		"priority":    "standard",
		"lines":       []map[string]any{{"sku": sku, "quantity": 1}},
		"payment":     map[string]any{"method": "card", "token": "tok_bench_4242424242"},
		"shipping_address": map[string]any{
			"name": "Ada Benchmark", "line1": "Hauptstrasse 12", "city": "Leipzig",
			"postal_code": "04109", "country": "DE",
		},
	})
	return b
}

// Run runs the benchmark: the bare Echo arm, the naive arm, then the full intake arm, one after
// the other on the same machine. It returns the report whenever the arms ran, also when a stock
// check failed (the error then wraps ErrOversell).
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	id := randomHex(6)
	rep := &Report{cfg: cfg, started: time.Now().UTC(), machine: describeMachine(ctx, cfg)}

	apiSchema, naiveSchema := "bench_"+id, "bench_"+id+"_naive"
	apiURL, err := withSearchPath(cfg.DatabaseURL, apiSchema)
	if err != nil {
		return nil, err
	}
	naiveURL, err := withSearchPath(cfg.DatabaseURL, naiveSchema)
	if err != nil {
		return nil, err
	}
	for _, s := range []string{apiSchema, naiveSchema} {
		drop, err := tempSchema(ctx, cfg, s)
		if err != nil {
			return nil, err
		}
		defer drop()
	}
	rdb, prefix, cleanup := tempRedis(ctx, cfg, id)
	defer cleanup()

	waitQuiet(ctx, cfg.Progress)
	bare, err := runBare(ctx, cfg, &repeats{}, id)
	if err != nil {
		return nil, fmt.Errorf("bare Echo arm: %w", err)
	}
	rep.arms = append(rep.arms, bare)
	waitQuiet(ctx, cfg.Progress)
	naive, err := runNaive(ctx, cfg, &repeats{}, id, naiveURL)
	if err != nil {
		return nil, fmt.Errorf("naive arm: %w", err)
	}
	rep.arms = append(rep.arms, naive)
	waitQuiet(ctx, cfg.Progress)
	full, profs, err := runIntake(ctx, cfg, &repeats{}, id, apiURL, rdb, prefix)
	if err != nil {
		return nil, fmt.Errorf("full intake arm: %w", err)
	}
	rep.arms = append(rep.arms, full)
	rep.profile, rep.openProfile = profs[0], profs[1]
	rep.finished = time.Now().UTC()

	var errs []error
	for _, a := range rep.arms {
		if a.check != nil {
			errs = append(errs, a.check.failure())
		}
	}
	return rep, errors.Join(errs...)
}

// tempSchema creates the Postgres schema name for one benchmark run; drop removes it and
// everything in it.
func tempSchema(ctx context.Context, cfg Config, name string) (drop func(), err error) {
	if err := execAdmin(ctx, cfg.DatabaseURL, "CREATE SCHEMA "+pgx.Identifier{name}.Sanitize()); err != nil {
		return nil, fmt.Errorf("create schema %s: %w", name, err)
	}
	return func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := execAdmin(cctx, cfg.DatabaseURL, "DROP SCHEMA IF EXISTS "+pgx.Identifier{name}.Sanitize()+" CASCADE"); err != nil {
			fmt.Fprintf(cfg.Progress, "cleanup: drop schema %s: %v\n", name, err)
		}
	}, nil
}

// tempRedis connects to the benchmark's Redis and picks the run's key prefix; cleanup deletes
// every key under it and closes the client.
func tempRedis(ctx context.Context, cfg Config, id string) (rdb redis.UniversalClient, prefix string, cleanup func()) {
	rdb = redisstore.NewClient(cfg.Redis)
	prefix = "bench:" + id + ":"
	return rdb, prefix, func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := redisstore.DeleteKeys(cctx, rdb, prefix+"*"); err != nil {
			fmt.Fprintf(cfg.Progress, "cleanup: delete redis keys %s*: %v\n", prefix, err)
		}
		_ = rdb.Close()
	}
}

// armResult is one arm's runs and checks.
type armResult struct {
	name     string
	key      string
	design   string
	warmup   runResult
	closed   runResult   // closed loop: Workers requests always in flight
	steps    []runResult // the open-model search for saturation, in the order run
	sat      runResult   // the highest sustained step: the arm's saturation
	satFound bool        // false when not even the lowest step was sustained
	satAtTop bool        // the search's highest step was sustained: the arm may sustain more
	open     runResult   // the fixed-rate open-model run
	// discarded are runs repeated because other processes took the CPUs during them.
	discarded []runResult
	check     *stockCheck // nil for the bare arm (it holds no stock)
	notes     []string
	accepted  int64 // 202 answers over every run of the arm, warm-up included
}

// When an open-model step counts as sustained: the arm answered (nearly) every request 202, the
// generator kept the schedule, and the p99 stayed bounded.
const (
	sustainP99       = 100 * time.Millisecond
	sustainMaxFailed = 0.001 // share of requests not answered 202
	sustainMinSent   = 0.97  // share of the scheduled requests actually sent
	// A step's queue grew when the median latency of its last third exceeds twice its first
	// third's plus this slack: arrivals above capacity build a backlog that a short step's p99
	// alone may not show yet.
	sustainGrowthSlack = 5 * time.Millisecond
)

// searchFractions are the open-model steps, as fractions of the closed-loop throughput, tried
// in order until one is not sustained; then bisectSteps more steps narrow the gap.
var searchFractions = []float64{0.3, 0.45, 0.6, 0.75, 0.9, 1.05, 1.25, 1.5}

const bisectSteps = 2

// sustained says whether an open-model run of duration d kept up with its rate.
func (r runResult) sustained(d time.Duration) bool {
	scheduled := float64(r.rate) * d.Seconds()
	return r.requests > 0 &&
		float64(r.failed()) <= sustainMaxFailed*float64(r.requests) &&
		float64(r.requests) >= sustainMinSent*scheduled &&
		r.quantile(0.99) <= sustainP99 &&
		!r.backlogGrew()
}

// backlogGrew says whether the answers got slower over the run, as a growing queue makes them.
func (r runResult) backlogGrew() bool {
	return r.thirds && r.late > 2*r.early+sustainGrowthSlack
}

// hooks let an arm add to its runs.
type hooks struct {
	// aroundClosed and aroundOpen wrap the closed-loop and the fixed-rate open-model runs (the
	// CPU profiles).
	aroundClosed func(run func())
	aroundOpen   func(run func())
	// inside reads the server's own latency histograms, before and after each measured run.
	inside func() (apiTimes, error)
}

// once is one measured run of an arm, with its CPU use and, when the arm can say, the server's
// own timings.
func (h hooks) once(ctx context.Context, t target, keyPrefix string, l load) runResult {
	var before apiTimes
	if h.inside != nil {
		before, _ = h.inside() // a failed scrape leaves the timings unknown
	}
	cpu := sampleCPU()
	r := attack(ctx, t, keyPrefix, l)
	r.cpu = cpu.until(sampleCPU())
	if before != nil {
		if after, err := h.inside(); err == nil {
			r.inside.request, r.inside.known = after.meanSince(before, metricRequest)
			r.inside.reserve, _ = after.meanSince(before, metricReserve)
			r.inside.produce, _ = after.meanSince(before, metricProduce)
		}
	}
	return r
}

// maxRepeats bounds how many disturbed runs one arm repeats, so a machine that never calms down
// cannot stretch the benchmark much.
const maxRepeats = 2

// repeats counts the disturbed runs repeated so far in one arm.
type repeats struct{ n int }

// run is a measured run of the arm. A run during which other processes took more than
// contendedCores is repeated once the machine is quiet again (at most maxRepeats per arm); the disturbed attempt is kept in a.discarded, as its orders count in the stock check.
func (a *armResult) run(ctx context.Context, cfg Config, h hooks, rep *repeats, t target, keyPrefix string, l load) runResult {
	r := h.once(ctx, t, keyPrefix, l)
	if !r.cpu.known || r.cpu.other <= contendedCores || rep.n >= maxRepeats || ctx.Err() != nil {
		return r
	}
	rep.n++
	a.discarded = append(a.discarded, r)
	fmt.Fprintf(cfg.Progress, "%s: %s disturbed (other processes used %.2f cores); repeating it\n", a.name, l.label, r.cpu.other)
	waitQuiet(ctx, cfg.Progress)
	return h.once(ctx, t, keyPrefix+"again-", l)
}

// measure runs one arm: a warm-up, a closed-loop run, the open-model search for saturation, and
// the fixed-rate open-model run.
func measure(ctx context.Context, cfg Config, rep *repeats, name, keyPrefix string, t target, h hooks) armResult {
	a := armResult{name: name}
	a.warmup = attack(ctx, t, keyPrefix+"warm-", load{label: "warm-up", workers: 8, duration: time.Second})
	settle(ctx)

	closedRun := func() {
		a.closed = a.run(ctx, cfg, h, rep, t, keyPrefix+"closed-", load{label: fmt.Sprintf("closed loop, %d in flight", cfg.Workers), workers: cfg.Workers, duration: cfg.Duration})
	}
	if h.aroundClosed != nil {
		h.aroundClosed(closedRun)
	} else {
		closedRun()
	}
	fmt.Fprintf(cfg.Progress, "%s: closed loop %.0f orders/s, p50 %s, p99 %s, %d not 202\n",
		name, a.closed.throughput(), ms(a.closed.quantile(0.5)), ms(a.closed.quantile(0.99)), a.closed.failed())
	settle(ctx)

	a.search(ctx, cfg, rep, keyPrefix, t, h)
	if a.satFound {
		fmt.Fprintf(cfg.Progress, "%s: saturation (highest sustained open-model rate) %d/s, p99 %s\n", name, a.sat.rate, ms(a.sat.quantile(0.99)))
	} else {
		fmt.Fprintf(cfg.Progress, "%s: no open-model step was sustained\n", name)
	}

	rate := cfg.Rate
	if rate == 0 {
		rate = max(int(0.8*float64(a.sat.rate)), 1)
	}
	openRun := func() {
		a.open = a.run(ctx, cfg, h, rep, t, keyPrefix+"open-", load{label: "open model", rate: rate, workers: 32, duration: cfg.Duration})
	}
	if h.aroundOpen != nil {
		h.aroundOpen(openRun)
	} else {
		openRun()
	}
	fmt.Fprintf(cfg.Progress, "%s: open model at %d/s: %.0f orders/s, p50 %s, p99 %s, p99.9 %s, %d not 202\n",
		name, rate, a.open.throughput(), ms(a.open.quantile(0.5)), ms(a.open.quantile(0.99)), ms(a.open.quantile(0.999)), a.open.failed())

	n := a.warmup.accepted() + a.closed.accepted() + a.open.accepted()
	for _, s := range append(a.steps, a.discarded...) {
		n += s.accepted()
	}
	a.accepted = int64(n)
	return a
}

// search finds the arm's saturation: the highest open-model rate it sustains, stepping up from
// a fraction of the closed-loop throughput until a step fails, then bisecting.
func (a *armResult) search(ctx context.Context, cfg Config, rep *repeats, keyPrefix string, t target, h hooks) {
	capacity := a.closed.throughput()
	if capacity < 10 {
		capacity = 10
	}
	d := stepDuration(cfg.Duration)
	// A step that fails is tried once more: on a shared machine a single stall of another
	// process can push one step's p99 over the bound.
	step := func(rate int) bool {
		for range 2 {
			r := a.run(ctx, cfg, h, rep, t, fmt.Sprintf("%sstep%d-", keyPrefix, len(a.steps)), load{label: "search step", rate: rate, workers: 32, duration: d})
			a.steps = append(a.steps, r)
			settle(ctx)
			if r.sustained(d) {
				if !a.satFound || rate > a.sat.rate {
					a.sat, a.satFound = r, true
				}
				return true
			}
		}
		return false
	}
	failed := 0
	for _, f := range searchFractions {
		if ctx.Err() != nil {
			return
		}
		rate := max(int(f*capacity), 1)
		if !step(rate) {
			failed = rate
			break
		}
	}
	if !a.satFound {
		if len(a.steps) > 0 {
			a.sat = a.steps[0] // reported as not sustained
		}
		return
	}
	a.satAtTop = failed == 0
	for range bisectSteps {
		if failed == 0 || ctx.Err() != nil || float64(failed-a.sat.rate) < 0.04*capacity {
			return
		}
		mid := (a.sat.rate + failed) / 2
		if !step(mid) {
			failed = mid
		}
	}
}

// stepDuration is the length of one search step: long enough that a queue growing at a few
// percent over capacity pushes the p99 over its bound.
func stepDuration(d time.Duration) time.Duration {
	return max(d*3/10, time.Second)
}

// quietWait bounds how long an arm waits for other processes to leave the CPUs alone.
const quietWait = 10 * time.Second

// waitQuiet waits, up to quietWait, until other processes use less than contendedCores for a
// second, so an arm does not start in the middle of someone's build. It proceeds anyway after
// that; the report shows how busy the machine was.
func waitQuiet(ctx context.Context, progress io.Writer) {
	deadline := time.Now().Add(quietWait)
	said := false
	for {
		before := sampleCPU()
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
		u := before.until(sampleCPU())
		if !u.known || u.machine-u.self < contendedCores {
			return
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(progress, "machine still busy (%.2f cores used by others); going on\n", u.machine-u.self)
			return
		}
		if !said {
			fmt.Fprintf(progress, "machine busy (%.2f cores used by others); waiting up to %s for it to calm down\n", u.machine-u.self, quietWait)
			said = true
		}
	}
}

// settle pauses between runs so one run's tail does not overlap the next.
func settle(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-time.After(500 * time.Millisecond):
	}
}

func runBare(ctx context.Context, cfg Config, rep *repeats, id string) (armResult, error) {
	srv, err := serve(bareHandler())
	if err != nil {
		return armResult{}, err
	}
	t := newTarget(srv.url+"/v1/orders", http.Header{"Content-Type": {"application/json"}}, orderBody(hotSKU))
	a := measure(ctx, cfg, rep, "bare Echo", "bench-"+id+"-bare-", t, hooks{})
	a.key = "bare"
	a.design = "Echo handler: decode the order body strictly into a struct, answer 202 with a small JSON. No auth, no state."
	return a, srv.close()
}

func runNaive(ctx context.Context, cfg Config, rep *repeats, id, databaseURL string) (armResult, error) {
	pool, err := postgres.Open(ctx, databaseURL, cfg.NaivePool)
	if err != nil {
		return armResult{}, err
	}
	defer pool.Close()
	if err := setupNaive(ctx, pool, hotSKU, cfg.Stock); err != nil {
		return armResult{}, err
	}
	srv, err := serve(naiveHandler(pool))
	if err != nil {
		return armResult{}, err
	}
	t := newTarget(srv.url+"/v1/orders", http.Header{"Content-Type": {"application/json"}}, orderBody(hotSKU))
	a := measure(ctx, cfg, rep, "naive Postgres", "bench-"+id+"-naive-", t, hooks{})
	a.key = "naive"
	a.design = fmt.Sprintf("Echo handler, per order one pgx transaction: `SELECT on_hand, allocated ... FOR UPDATE` on the SKU row, "+
		"`UPDATE` allocated, `INSERT` the order, `COMMIT`; 202, or 409 when short. Pool of %d connections.", cfg.NaivePool)
	if err := srv.close(); err != nil {
		return a, err
	}
	st := naiveState{stock: cfg.Stock, accepted: a.accepted}
	var rerr error
	st.onHand, st.allocated, st.orderRows, st.units, rerr = readNaive(ctx, pool, hotSKU)
	a.check = &stockCheck{arm: a.name, err: rerr}
	if rerr == nil {
		a.check.state, a.check.problems = st.String(), st.problems()
	}
	return a, nil
}

func runIntake(ctx context.Context, cfg Config, rep *repeats, id, databaseURL string, rdb redis.UniversalClient, prefix string) (armResult, [2]*profileSummary, error) {
	var profs [2]*profileSummary // closed loop, open model
	store := redisstore.New(rdb, prefix)
	token, err := seedIntake(ctx, databaseURL, store, hotSKU, cfg.Stock)
	if err != nil {
		return armResult{}, profs, err
	}
	arm, err := startIntake(ctx, cfg, databaseURL, prefix, token, store)
	if err != nil {
		return armResult{}, profs, err
	}
	defer arm.close()

	callsBefore, callsErr := redisCalls(ctx, rdb)
	readsBefore, readsErr := redisReads(ctx, rdb)
	var profErrs [2]error
	h := hooks{
		aroundClosed: func(run func()) { profs[0], profErrs[0] = profiled(ctx, cfg.CPUProfile, true, run) },
		aroundOpen: func(run func()) {
			profs[1], profErrs[1] = profiled(ctx, "", false, func() {
				stop, err := startTrace(cfg.Trace)
				if err != nil {
					profErrs[1] = err
				}
				run()
				if err := stop(); err != nil {
					profErrs[1] = err
				}
			})
		},
		inside: func() (apiTimes, error) { return scrapeAPITimes(ctx, arm.url) },
	}
	a := measure(ctx, cfg, rep, "full intake", "bench-"+id+"-intake-", arm.target(hotSKU), h)
	a.key = "intake"
	a.design = "the real api (`api.Run` in this process): API key check, idempotency record, strict decoding and validation, " +
		"pricing from the catalog cache, OrderPlaced built and schema-validated, Redis Lua reservation, pending snapshot, " +
		"synchronous produce to the broker (acks=all, idempotent producer), 202 after the broker's acknowledgement. " +
		"Rate limiting off (`RATE_LIMIT_PER_SECOND=0`)."
	for _, err := range profErrs {
		if err != nil {
			a.notes = append(a.notes, "CPU profile: "+err.Error())
		}
	}
	if callsErr == nil && a.accepted > 0 {
		if after, err := redisCalls(ctx, rdb); err == nil {
			a.notes = append(a.notes, "Redis commands per accepted order (INFO commandstats delta over the arm, commands inside Lua scripts included; the Redis server is shared with anything else running): "+
				callsPerOrder(callsBefore, after, a.accepted))
		}
	}
	if readsErr == nil && a.accepted > 0 {
		if after, err := redisReads(ctx, rdb); err == nil {
			a.notes = append(a.notes, fmt.Sprintf("Redis socket reads per accepted order over the arm (INFO stats total_reads_processed delta): %.2f. "+
				"An order makes 3 round trips (idempotency begin, reservation, answer with snapshot); fewer reads than that mean the auto-pipeliner (`REDIS_AUTOPIPELINE`) wrote several orders' commands together.",
				float64(after-readsBefore)/float64(a.accepted)))
		}
	}
	stopErr := arm.stop()
	a.notes = append(a.notes, "api log: "+arm.logs.summary())
	if stopErr != nil {
		return a, profs, stopErr
	}
	st, err := arm.state(ctx, hotSKU, cfg.Stock, a.accepted)
	a.check = &stockCheck{arm: a.name, err: err}
	if err == nil {
		a.check.state, a.check.problems = st.String(), st.problems()
	}
	return a, profs, nil
}

// profiled runs fn under the CPU profiler and summarizes the profile; with top, it adds the
// `go tool pprof -top` listing. keep, when set, is where the profile file stays.
func profiled(ctx context.Context, keep string, top bool, fn func()) (*profileSummary, error) {
	path := keep
	if path == "" {
		dir, err := os.MkdirTemp("", "orderpipe-bench-")
		if err != nil {
			fn()
			return nil, err
		}
		defer os.RemoveAll(dir)
		path = filepath.Join(dir, "intake.cpu.pprof")
	}
	f, err := os.Create(path)
	if err != nil {
		fn()
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		fn()
		return nil, fmt.Errorf("start CPU profile: %w", err)
	}
	fn()
	pprof.StopCPUProfile()
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	sum, err := summarizeProfile(raw)
	if err != nil {
		return nil, err
	}
	if top {
		sum.top = pprofTop(ctx, path)
	}
	return &sum, nil
}

// callsPerOrder renders the commands that grew by at least 0.05 per order.
func callsPerOrder(before, after map[string]int64, orders int64) string {
	type kv struct {
		cmd string
		per float64
	}
	var list []kv
	for cmd, n := range after {
		if per := float64(n-before[cmd]) / float64(orders); per >= 0.05 {
			list = append(list, kv{cmd, per})
		}
	}
	if len(list) == 0 {
		return "none"
	}
	slices.SortFunc(list, func(a, b kv) int {
		return cmp.Or(cmp.Compare(b.per, a.per), cmp.Compare(a.cmd, b.cmd))
	})
	parts := make([]string, len(list))
	for i, e := range list {
		parts[i] = fmt.Sprintf("%s %.2f", strings.ToUpper(e.cmd), e.per)
	}
	return strings.Join(parts, ", ")
}

// machine describes where the benchmark ran.
type machine struct {
	cpus     int
	model    string
	goVer    string
	os       string
	postgres string
	redis    string
}

func describeMachine(ctx context.Context, cfg Config) machine {
	m := machine{cpus: runtime.NumCPU(), model: "unknown", goVer: runtime.Version(), os: runtime.GOOS + "/" + runtime.GOARCH}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.model = strings.TrimSpace(v)
				break
			}
		}
	}
	if conn, err := pgx.Connect(ctx, cfg.DatabaseURL); err == nil {
		var ver, fsync, sync string
		if conn.QueryRow(ctx, `SELECT current_setting('server_version'), current_setting('fsync'), current_setting('synchronous_commit')`).Scan(&ver, &fsync, &sync) == nil {
			m.postgres = fmt.Sprintf("PostgreSQL %s (fsync %s, synchronous_commit %s)", ver, fsync, sync)
		}
		_ = conn.Close(ctx)
	}
	rdb := redisstore.NewClient(cfg.Redis)
	if info, err := rdb.Info(ctx, "server").Result(); err == nil {
		for line := range strings.SplitSeq(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
				m.redis = "Redis " + v
			}
		}
	}
	_ = rdb.Close()
	return m
}

func execAdmin(ctx context.Context, databaseURL, sql string) error {
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		return fmt.Errorf("connect to postgres: %w", err)
	}
	defer func() { _ = conn.Close(ctx) }()
	_, err = conn.Exec(ctx, sql)
	return err
}

// withSearchPath returns databaseURL with search_path set to schema.
func withSearchPath(databaseURL, schema string) (string, error) {
	u, err := url.Parse(databaseURL)
	if err != nil {
		return "", fmt.Errorf("parse database URL: %w", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails
	return hex.EncodeToString(b)
}

// us renders a small duration in microseconds.
func us(d time.Duration) string {
	return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
}

// ms renders a latency in milliseconds.
func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f ms", v)
	case v >= 10:
		return fmt.Sprintf("%.1f ms", v)
	default:
		return fmt.Sprintf("%.2f ms", v)
	}
}

// startTrace starts a runtime execution trace into path (nothing when path is empty) and returns
// the function that stops it and closes the file.
func startTrace(path string) (func() error, error) {
	if path == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return func() error { return nil }, fmt.Errorf("trace: %w", err)
	}
	if err := trace.Start(f); err != nil {
		f.Close()
		return func() error { return nil }, fmt.Errorf("trace: %w", err)
	}
	return func() error {
		trace.Stop()
		return f.Close()
	}, nil
}
