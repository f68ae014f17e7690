package notifier

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The pause follows the critical lag with hysteresis, never lasts longer than maxPause, and is
// followed by at least minRun of running.
func TestGateSteps(t *testing.T) {
	t.Parallel()
	var calls []bool
	g := &Gate{threshold: 100, maxPause: 10 * time.Second, minRun: 5 * time.Second,
		apply: func(p bool) { calls = append(calls, p) }, log: slog.New(slog.DiscardHandler), m: newMetrics(prometheus.NewRegistry())}
	t0 := time.Now()
	steps := []struct {
		at     time.Duration
		lag    int64
		paused bool
	}{
		{0, 50, false},
		{1 * time.Second, 150, true}, // above the threshold: pause
		{2 * time.Second, 80, true},  // still above half of it
		{3 * time.Second, 50, false}, // at half: resume
		{4 * time.Second, 101, true},
		{13 * time.Second, 500, true},  // paused 9s
		{14 * time.Second, 500, false}, // paused 10s: resume however high the lag
		{16 * time.Second, 500, false}, // running for at least minRun
		{19 * time.Second, 500, true},  // minRun over
		{20 * time.Second, 0, false},   // drained
		{21 * time.Second, 100, false}, // at the threshold: not above
	}
	for i, s := range steps {
		g.step(t0.Add(s.at), s.lag)
		if g.paused != s.paused {
			t.Fatalf("step %d (t+%s, lag %d): paused %v, want %v", i, s.at, s.lag, g.paused, s.paused)
		}
	}
	if got := fmt.Sprint(calls); got != "[true false true false true false]" {
		t.Fatalf("pause calls %s, want [true false true false true false]", got)
	}
}
