package e2e

import (
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/orderpipe/orderpipe/internal/checker"
)

func TestPercentilesOf(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	p := PercentilesOf(ds)
	if p.N != 100 || p.P50 != 50*time.Millisecond || p.P90 != 90*time.Millisecond || p.P99 != 99*time.Millisecond || p.P999 != 100*time.Millisecond || p.Max != 100*time.Millisecond {
		t.Fatalf("got %+v, want nearest-rank percentiles of 1..100 ms", p)
	}
	if got := PercentilesOf(nil); got.N != 0 || got.P99 != 0 {
		t.Fatalf("empty: got %+v", got)
	}
}

func TestStepValidate(t *testing.T) {
	good := []Step{
		{Action: "kill", Target: "order-worker"},
		{Action: "scale", Target: "order-worker", Replicas: 3},
		{Action: "broker-fault", Kind: "latency", For: time.Second},
		{Action: "broker-fault", Kind: "leader-move"},
		{Action: "redis-restart-empty"},
		{Action: "postgres-restart"},
		{Action: "payment-outage", For: time.Second},
	}
	for _, s := range good {
		if err := s.Validate(); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	bad := []Step{
		{Action: "kill", Target: "postgres"}, // only services of the run, never a store this way
		{Action: "kill", Target: "sshd"},
		{Action: "scale", Target: "notifier", Replicas: 2},
		{Action: "scale", Target: "order-worker", Replicas: 0},
		{Action: "broker-fault", Kind: "produce-error"}, // needs for
		{Action: "broker-fault", Kind: "meteor", For: time.Second},
		{Action: "payment-outage"},
		{Action: "reboot"},
	}
	for _, s := range bad {
		if err := s.Validate(); err == nil {
			t.Errorf("%+v: accepted, want an error", s)
		}
	}
}

// TestPlotIsWellFormedSVG renders a run with gaps (unknown lag) and a chaos step and parses it.
func TestPlotIsWellFormedSVG(t *testing.T) {
	var pts []Point
	for i := range 40 {
		p := Point{At: time.Duration(i) * time.Second, Offered: float64(10 * i), Accepted: float64(8 * i), Refused: float64(2 * i), P99: time.Duration(i) * time.Millisecond, CriticalLag: int64(i % 7), LowLag: int64(i % 3)}
		if i == 20 {
			p.CriticalLag, p.LowLag = -1, -1
		}
		pts = append(pts, p)
	}
	svg := Plot(`run <"x"> & co`, pts, []ChaosRecord{{Step: "kill order-worker", At: 10 * time.Second, Took: 2 * time.Second}})
	dec := xml.NewDecoder(strings.NewReader(svg))
	polylines := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, svg)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "polyline" {
			polylines++
		}
	}
	// 3 rate lines + p99 + 2 lag lines, the lag lines broken once by the unknown second.
	if polylines != 8 {
		t.Errorf("polylines: got %d, want 8", polylines)
	}
	if !strings.Contains(svg, "kill order-worker") {
		t.Errorf("the chaos step is not marked")
	}
}

func TestProblemsAndOK(t *testing.T) {
	r := &RunResult{Settled: true, Check: &checker.Report{Invariants: []checker.InvariantResult{{ID: "I1", Name: "No oversell", Holds: true}}}}
	if !r.OK() {
		t.Fatalf("clean run not OK: %v", r.Problems())
	}
	r.Check.Invariants = append(r.Check.Invariants, checker.InvariantResult{ID: "I2", Name: "No lost order", Count: 3})
	r.Events = []Event{{Proc: "notifier", What: "exited", Detail: "exit status 2"}}
	r.Chaos = []ChaosRecord{{Step: "kill api", Error: "no running api"}}
	r.Settled = false
	got := strings.Join(r.Problems(), "\n")
	for _, want := range []string{"did not settle", "I2 No lost order broken (count 3)", "notifier ended on its own", "chaos step kill api failed"} {
		if !strings.Contains(got, want) {
			t.Errorf("problems %q lack %q", got, want)
		}
	}
	if r.OK() {
		t.Fatal("a broken run is OK")
	}
}

// A chaos step whose evidence does not confirm it (a kill that hit an idle worker) fails the run,
// and the report shows every step's evidence.
func TestUnconfirmedChaosStepFailsTheRun(t *testing.T) {
	r := &RunResult{Settled: true, Check: &checker.Report{Invariants: []checker.InvariantResult{{ID: "I1", Name: "No oversell", Holds: true}}}}
	r.Chaos = []ChaosRecord{
		{Step: "payment-outage for 10s", At: 5 * time.Second, Confirmed: true, Evidence: []string{"paysim /healthz 503 during the outage, 200 after"}},
		{Step: "kill notifier", At: 26 * time.Second, Evidence: []string{"notifier had 0 records not yet committed when it was signalled (work in hand)",
			"NOT CONFIRMED: notifier had no uncommitted record within 10s before the signal: the kill hit an idle process"}},
	}
	got := strings.Join(r.Problems(), "\n")
	if r.OK() || !strings.Contains(got, "chaos step kill notifier at 26.0 s not confirmed: ") || !strings.Contains(got, "the kill hit an idle process") {
		t.Fatalf("problems %q: want the unconfirmed kill", got)
	}
	if strings.Contains(got, "payment-outage") {
		t.Errorf("problems %q name the confirmed step", got)
	}
	md := r.Markdown("##", "")
	for _, want := range []string{"| 5.0 s | payment-outage for 10s | 0 |  | paysim /healthz 503 during the outage, 200 after | yes |",
		"| kill notifier | 0 |  | notifier had 0 records not yet committed", "the kill hit an idle process | **NO** |"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}
