package bench

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func promoRun(accepted int, elapsed time.Duration, lat ...time.Duration) runResult {
	return runResult{requests: accepted, elapsed: elapsed, codes: map[int]int{http.StatusAccepted: accepted}, latencies: lat}
}

// The promo section: its markers, the ratio over every round (orders over time, not a mean of
// per-round ratios), the verdict against the target and the merged latency quantiles.
func TestPromoReportMarkdown(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	rep := &PromoReport{
		cfg:      Config{Command: "orderctl bench promo", Workers: 64, Duration: time.Second},
		started:  time.Date(2026, 11, 27, 0, 5, 0, 0, time.UTC),
		without:  []runResult{promoRun(1000, time.Second, 1*ms, 2*ms), promoRun(3000, time.Second, 3*ms, 4*ms)},
		with:     []runResult{promoRun(900, time.Second, 5*ms, 6*ms), promoRun(2700, time.Second, 7*ms, 8*ms)},
		promoted: 3600,
	}
	if got := rep.Ratio(); got < 0.8999 || got > 0.9001 {
		t.Fatalf("ratio %.4f, want 0.9 (3600 over 2 s against 4000 over 2 s)", got)
	}
	md := rep.Markdown()
	for _, want := range []string{
		"<!-- promo:begin -->", "<!-- promo:end -->", "0.90x", "met", "| all rounds | 2000 (p50 2.00 ms", "| 1800 (p50 6.00 ms",
		"Check: every unit held on the promoted SKU is counted as promotional in Redis (3600 units): passed.",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	rep.with[1] = promoRun(2000, time.Second)
	if md := rep.Markdown(); !strings.Contains(md, "**not met**") {
		t.Errorf("a ratio of %.2f is reported as met:\n%s", rep.Ratio(), md)
	}
	if _, err := ReplaceNamedSection("# Benchmarks\n", PromoSectionName, rep.Markdown()); err != nil {
		t.Fatalf("the section does not fit WriteNamedSection: %v", err)
	}
}
