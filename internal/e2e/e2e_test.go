package e2e

import (
	"context"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/orderpipe/orderpipe/internal/checker"
	"github.com/orderpipe/orderpipe/internal/loadgen"
)

// TestSmokeScenarioWithChaos plays the small flash sale (scenarios/smoke.yaml) through the real
// processes while an order-worker is killed with SIGKILL and restarted and the payment provider
// is down for a few seconds, then checks from the outside that every invariant holds.
func TestSmokeScenarioWithChaos(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	s, err := loadgen.LoadScenario(filepath.Join(filepath.Dir(file), "..", "..", "scenarios", "smoke.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s.Chaos = append(s.Chaos,
		loadgen.ChaosStep{At: loadgen.Duration{Duration: 3 * time.Second}, Action: "kill", Target: "order-worker", For: loadgen.Duration{Duration: time.Second}},
		loadgen.ChaosStep{At: loadgen.Duration{Duration: 5 * time.Second}, Action: "payment-outage", For: loadgen.Duration{Duration: 3 * time.Second}},
	)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	res, err := RunScenario(ctx, s, RunOptions{
		Env:      Options{Bin: testBin(t), Partitions: 3, PaymentLatency: 20 * time.Millisecond, PaymentJitter: 20 * time.Millisecond},
		Progress: testWriter{t},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res.Markdown("###", ""))
	if !res.OK() {
		t.Fatalf("the run is not clean: %s", strings.Join(res.Problems(), "; "))
	}
	if res.Summary.Accepted == 0 {
		t.Fatalf("no order was accepted")
	}
	if len(res.Chaos) != 2 {
		t.Fatalf("chaos steps executed: got %d, want 2", len(res.Chaos))
	}
	if !strings.Contains(res.Chaos[0].Detail, "SIGKILL order-worker-1") {
		t.Errorf("first chaos step: got %q, want a SIGKILL of order-worker-1", res.Chaos[0].Detail)
	}
	if res.Summary.AcceptToConfirm.N == 0 {
		t.Errorf("no accept-to-confirm latency was measured")
	}
	// The scenario's promotion priced hot units and its cap and limits held (checker P1).
	var p1 *checker.InvariantResult
	for i := range res.Check.Invariants {
		if res.Check.Invariants[i].ID == "P1" {
			p1 = &res.Check.Invariants[i]
		}
	}
	if p1 == nil || !p1.Holds {
		t.Errorf("P1: got %+v, want it reported and holding", p1)
	}
	if got := res.Check.Summary["promo_units_sold_smoke-hot-20"]; got == 0 {
		t.Errorf("promotional units sold under smoke-hot-20: got 0, want some")
	}
}
