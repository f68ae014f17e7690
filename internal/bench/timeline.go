package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/orderpipe/orderpipe/internal/redisstore"
)

// TimelineConfig configures RunTimeline: the full intake alone, as in the benchmark's intake
// arm, driven at one fixed open-model rate for several runs, each cut into short windows.
type TimelineConfig struct {
	Config
	Runs   int           // open-model runs at Rate, one after the other
	Window time.Duration // length of a timeline window
	Slow   time.Duration // a request slower than this is slow
}

// TimelineRun is one open-model run: its percentiles and the windows (by send time) that had
// slow requests.
type TimelineRun struct {
	Requests, NotAccepted int
	P50, P99, P999        time.Duration
	Slow                  int              // requests slower than TimelineConfig.Slow
	Windows               []TimelineWindow // only windows with slow requests, in time order
}

// TimelineWindow is one window of a run: the requests sent in it.
type TimelineWindow struct {
	At       time.Duration // from the run's first request
	Requests int
	Slow     int
	Max      time.Duration
}

// RunTimeline starts the full intake as the benchmark does (fresh schema, key prefix and kfake
// cluster), warms it up, and runs cfg.Runs open-model runs of cfg.Duration at cfg.Rate. It shows
// whether a run's p99 comes from a uniformly slow service or from stalls: windows in which every
// request is slow, the backlog draining after them.
func RunTimeline(ctx context.Context, cfg TimelineConfig) ([]TimelineRun, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	switch {
	case cfg.Rate < 1 || cfg.Runs < 1:
		return nil, fmt.Errorf("timeline: rate %d, runs %d: want both at least 1", cfg.Rate, cfg.Runs)
	case cfg.Window <= 0 || cfg.Slow <= 0:
		return nil, fmt.Errorf("timeline: window %s, slow %s: want both positive", cfg.Window, cfg.Slow)
	}
	id := randomHex(6)
	schema := "bench_" + id + "_timeline"
	apiURL, err := withSearchPath(cfg.DatabaseURL, schema)
	if err != nil {
		return nil, err
	}
	drop, err := tempSchema(ctx, cfg.Config, schema)
	if err != nil {
		return nil, err
	}
	defer drop()
	rdb, prefix, cleanup := tempRedis(ctx, cfg.Config, id)
	defer cleanup()

	store := redisstore.New(rdb, prefix)
	token, err := seedIntake(ctx, apiURL, store, hotSKU, cfg.Stock)
	if err != nil {
		return nil, err
	}
	arm, err := startIntake(ctx, cfg.Config, apiURL, prefix, token, store)
	if err != nil {
		return nil, err
	}
	defer arm.close()
	t := arm.target(hotSKU)
	waitQuiet(ctx, cfg.Progress)
	attack(ctx, t, "tl-"+id+"-w-", load{label: "warm-up", workers: 8, duration: time.Second})

	runs := make([]TimelineRun, 0, cfg.Runs)
	for i := range cfg.Runs {
		l := load{label: fmt.Sprintf("timeline %d", i+1), rate: cfg.Rate, workers: cfg.Workers, duration: cfg.Duration}
		res := attack(ctx, t, fmt.Sprintf("tl-%s-%d-", id, i), l)
		if err := ctx.Err(); err != nil {
			return runs, err
		}
		tr := TimelineRun{Requests: res.requests, NotAccepted: res.failed(),
			P50: res.quantile(0.5), P99: res.quantile(0.99), P999: res.quantile(0.999)}
		tr.Windows, tr.Slow = slowWindows(res.samples, cfg.Window, cfg.Slow)
		fmt.Fprintf(cfg.Progress, "%s: %d requests, p99 %s, %d slow\n", l.label, tr.Requests, ms(tr.P99), tr.Slow)
		runs = append(runs, tr)
	}
	stopErr := arm.stop()
	if s := arm.logs.summary(); s != "no warnings or errors" {
		stopErr = errors.Join(stopErr, fmt.Errorf("api log: %s", s))
	}
	return runs, stopErr
}

// slowWindows cuts the samples into windows of length window, counted from the first request
// sent, and returns the windows with requests slower than slow, in time order, and how many
// requests were slow in all.
func slowWindows(samples []sentSample, window, slow time.Duration) ([]TimelineWindow, int) {
	if len(samples) == 0 {
		return nil, 0
	}
	start := samples[0].sent
	for _, s := range samples {
		if s.sent.Before(start) {
			start = s.sent
		}
	}
	byIndex := map[int]*TimelineWindow{}
	total := 0
	for _, s := range samples {
		n := int(s.sent.Sub(start) / window)
		w := byIndex[n]
		if w == nil {
			w = &TimelineWindow{At: time.Duration(n) * window}
			byIndex[n] = w
		}
		w.Requests++
		w.Max = max(w.Max, s.latency)
		if s.latency > slow {
			w.Slow++
			total++
		}
	}
	var out []TimelineWindow
	for _, w := range byIndex {
		if w.Slow > 0 {
			out = append(out, *w)
		}
	}
	slices.SortFunc(out, func(a, b TimelineWindow) int { return cmp.Compare(a.At, b.At) })
	return out, total
}

// WriteTimeline renders the runs: a line per run, then its slow windows.
func WriteTimeline(w io.Writer, cfg TimelineConfig, runs []TimelineRun) {
	fmt.Fprintf(w, "full intake, open model at %d orders/s, %d run(s) of %s; windows of %s with requests slower than %s:\n",
		cfg.Rate, len(runs), cfg.Duration, cfg.Window, cfg.Slow)
	for i, r := range runs {
		fmt.Fprintf(w, "run %d: %d requests, %d not 202, p50 %s, p99 %s, p99.9 %s, %d slow (%.1f%%) in %d window(s)\n",
			i+1, r.Requests, r.NotAccepted, ms(r.P50), ms(r.P99), ms(r.P999), r.Slow, 100*float64(r.Slow)/float64(max(r.Requests, 1)), len(r.Windows))
		var b strings.Builder
		for _, win := range r.Windows {
			fmt.Fprintf(&b, "  at %6.2fs: %4d of %4d slow, max %s\n", win.At.Seconds(), win.Slow, win.Requests, ms(win.Max))
		}
		fmt.Fprint(w, b.String())
	}
}
