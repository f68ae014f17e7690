package loadgen_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/orderpipe/orderpipe/internal/loadgen"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// The summary table of a fixed result matches the golden file.
func TestWriteSummaryGolden(t *testing.T) {
	t.Parallel()
	o := func(class string, status int, reason string, lat time.Duration, dup bool, tries int) loadgen.Outcome {
		out := loadgen.Outcome{Class: class, Status: status, Reason: reason, Latency: lat, Duplicate: dup, Attempts: tries + 1}
		for range tries {
			out.Tries = append(out.Tries, loadgen.Try{Status: 429, Reason: "rate-limited"})
		}
		if class == loadgen.ClassAccepted {
			out.OrderID = "o"
		}
		return out
	}
	res := &loadgen.Result{Scenario: "golden", RunID: "feedbeef", Elapsed: 4 * time.Second, Outcomes: []loadgen.Outcome{
		o(loadgen.ClassAccepted, 202, "", 4*time.Millisecond, false, 0),
		o(loadgen.ClassAccepted, 202, "", 6*time.Millisecond, true, 0),
		o(loadgen.ClassAccepted, 202, "", 8*time.Millisecond, false, 2),
		o(loadgen.ClassRefused, 409, "out-of-stock", 2*time.Millisecond, false, 0),
		o(loadgen.ClassRefused, 429, "rate-limited", time.Millisecond, false, 3),
		o(loadgen.ClassError, 500, "internal", 20*time.Millisecond, false, 0),
		o(loadgen.ClassUnknown, 0, "context deadline exceeded", 10*time.Second, false, 0),
	}}
	var b bytes.Buffer
	if err := res.WriteSummary(&b); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "summary.golden")
	if *update {
		if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if b.String() != string(want) {
		t.Errorf("summary differs from %s (run with -update if intended):\ngot:\n%s\nwant:\n%s", golden, b.String(), want)
	}
}
