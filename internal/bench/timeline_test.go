package bench

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/orderpipe/orderpipe/internal/config"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

func TestSlowWindows(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	ms := time.Millisecond
	samples := []sentSample{
		{t0.Add(10 * ms), 2 * ms},   // window 0: fast
		{t0, 3 * ms},                // window 0: the first sent, out of order
		{t0.Add(120 * ms), 90 * ms}, // window 2: slow
		{t0.Add(140 * ms), 60 * ms}, // window 2: slow
		{t0.Add(149 * ms), 5 * ms},  // window 2: fast
		{t0.Add(260 * ms), 21 * ms}, // window 5: slow
		{t0.Add(300 * ms), 20 * ms}, // window 6: exactly the threshold is not slow
	}
	windows, slow := slowWindows(samples, 50*ms, 20*ms)
	want := []TimelineWindow{
		{At: 100 * ms, Requests: 3, Slow: 2, Max: 90 * ms},
		{At: 250 * ms, Requests: 1, Slow: 1, Max: 21 * ms},
	}
	if slow != 3 || len(windows) != len(want) {
		t.Fatalf("slow %d, windows %+v; want 3 slow in %+v", slow, windows, want)
	}
	for i := range want {
		if windows[i] != want[i] {
			t.Fatalf("window %d = %+v, want %+v", i, windows[i], want[i])
		}
	}
	if w, n := slowWindows(nil, 50*ms, 20*ms); w != nil || n != 0 {
		t.Fatalf("no samples: %v, %d", w, n)
	}
}

// TestRunTimeline runs the tool as `orderctl bench timeline` does, at a rate this machine keeps
// up with whatever else runs, and checks every request was answered and counted.
func TestRunTimeline(t *testing.T) {
	t.Parallel()
	_, dbURL := testenv.Postgres(t)
	rdb, _ := testenv.Redis(t)
	var progress bytes.Buffer
	cfg := TimelineConfig{
		Config: Config{DatabaseURL: dbURL, Redis: config.Redis{RedisAddrs: []string{rdb.Options().Addr}},
			Rate: 50, Duration: time.Second, Workers: 4, Progress: &progress},
		Runs: 2, Window: 100 * time.Millisecond, Slow: time.Second,
	}
	runs, err := RunTimeline(t.Context(), cfg)
	if err != nil {
		t.Fatalf("RunTimeline: %v; progress: %s", err, progress.String())
	}
	if len(runs) != 2 {
		t.Fatalf("%d runs, want 2", len(runs))
	}
	// How many requests an open-model second sends depends on the clock: vegeta sends on its
	// schedule only while the run's second lasts, so a machine that stalls sends fewer (never more
	// than rate x duration + 1). What must hold whatever the machine: some were sent, every one was
	// answered 202 and counted once, in the progress line and in the windows.
	for i, r := range runs {
		if r.Requests < 1 || r.Requests > 51 || r.NotAccepted != 0 || r.P99 <= 0 || r.P50 > r.P99 || r.P99 > r.P999 {
			t.Fatalf("run %d: %+v; want 1 to 51 requests, all 202, ordered percentiles", i, r)
		}
		if want := fmt.Sprintf("timeline %d: %d requests,", i+1, r.Requests); !strings.Contains(progress.String(), want) {
			t.Fatalf("run %d: progress lacks %q:\n%s", i, want, progress.String())
		}
		slow, inWindows := 0, 0
		for _, w := range r.Windows {
			slow += w.Slow
			inWindows += w.Requests
			if w.Slow < 1 || w.Slow > w.Requests {
				t.Fatalf("run %d: window %+v: want 1 to all of its requests slow", i, w)
			}
		}
		if slow != r.Slow || inWindows > r.Requests {
			t.Fatalf("run %d: windows count %d slow of %d requests, run says %d slow of %d", i, slow, inWindows, r.Slow, r.Requests)
		}
	}
	var out bytes.Buffer
	WriteTimeline(&out, cfg, runs)
	if !strings.Contains(out.String(), "run 2: ") {
		t.Fatalf("report:\n%s", out.String())
	}
}
