package e2e

import (
	"testing"

	"github.com/orderpipe/orderpipe/internal/checker"
)

// TestReclassifyRedisLossUpdatesTheSummary: when I3's violations are all buyers who resubmitted
// across a Redis loss, I3 holds with a by-design count, and the summary no longer counts it as
// broken (the JSON report said "invariants_broken 1" beside "all invariants hold").
func TestReclassifyRedisLossUpdatesTheSummary(t *testing.T) {
	newResult := func() *RunResult {
		return &RunResult{Check: &checker.Report{
			Invariants: []checker.InvariantResult{{ID: "I1", Holds: true}, {ID: "I3", Holds: false, Count: 2}},
			Summary:    map[string]int64{"invariants_broken": 1},
		}}
	}
	straddle := map[string]bool{"c-1": true, "c-2": true, "c-3": false}

	res := newResult()
	reclassifyRedisLoss(res, 1, []string{"c-1", "c-2"}, func(c string) bool { return straddle[c] })
	inv := res.Check.Invariants[1]
	if !inv.Holds || inv.Count != 0 || inv.ByDesignCount != 2 || inv.ByDesign == "" {
		t.Fatalf("I3 after reclassification: %+v, want holds with 2 by design", inv)
	}
	if got := res.Check.Summary["invariants_broken"]; got != 0 {
		t.Fatalf("invariants_broken = %d, want 0", got)
	}
	if res.Extra["I3 reclassified as by design"] == "" {
		t.Fatal("no note in Extra")
	}

	// A buyer with two orders who did not straddle a loss: a real double effect, left broken.
	res = newResult()
	reclassifyRedisLoss(res, 1, []string{"c-1", "c-3"}, func(c string) bool { return straddle[c] })
	if inv := res.Check.Invariants[1]; inv.Holds || inv.Count != 2 || res.Check.Summary["invariants_broken"] != 1 {
		t.Fatalf("with a buyer outside the loss: I3 %+v, broken %d; want unchanged", inv, res.Check.Summary["invariants_broken"])
	}
	// More violations than such buyers: something else hides behind them.
	res = newResult()
	reclassifyRedisLoss(res, 1, []string{"c-1"}, func(c string) bool { return straddle[c] })
	if inv := res.Check.Invariants[1]; inv.Holds || res.Check.Summary["invariants_broken"] != 1 {
		t.Fatalf("count mismatch: I3 %+v, broken %d; want unchanged", inv, res.Check.Summary["invariants_broken"])
	}
}
