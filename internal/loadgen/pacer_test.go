package loadgen_test

import (
	"math"
	"testing"
	"time"

	"github.com/orderpipe/orderpipe/internal/loadgen"
)

// TestPacerFollowsTheCurve checks the pacer's schedule against the arrival curve by arithmetic:
// the hits due in each second equal the integral of the rate over that second (within one hit),
// the due times never go backwards, and the pacer stops at the curve's end and at the buyer cap.
func TestPacerFollowsTheCurve(t *testing.T) {
	t.Parallel()
	s, err := loadgen.ParseScenario([]byte(`
name: curve
catalog: {background: {count: 3, stock: 1}}
arrival:
  - {phase: ramp, from: 0, to: 100, for: 10s}
  - {phase: hold, rate: 100, for: 5s}
  - {phase: spike, from: 100, to: 500, for: 2s}
  - {phase: decay, from: 500, to: 50, for: 3s}
mix: {hot_share: 0}
`))
	if err != nil {
		t.Fatal(err)
	}
	// Integral per second of the curve above, computed by hand from its phases.
	want := make([]float64, 20)
	for sec := range 10 { // ramp 0 -> 100: rate 10*t, integral over [sec, sec+1] = 5*(2sec+1)
		want[sec] = 5 * float64(2*sec+1)
	}
	for sec := 10; sec < 15; sec++ {
		want[sec] = 100
	}
	want[15], want[16] = 200, 400 // spike 100 -> 500 over 2 s: 100+200*t
	for i := range 3 {            // decay 500 -> 50 over 3 s: 500-150*t
		want[17+i] = 500 - 150*(float64(i)+0.5)
	}
	p := loadgen.NewPacer(s)
	got := make([]float64, 20)
	var prev time.Duration
	var k uint64
	for ; ; k++ {
		due, ok := p.Due(k)
		if !ok {
			break
		}
		if due < prev {
			t.Fatalf("hit %d due at %s, before hit %d at %s", k, due, k-1, prev)
		}
		prev = due
		got[int(due/time.Second)]++
	}
	total := 0.0
	for sec := range want {
		total += want[sec]
		if math.Abs(got[sec]-want[sec]) > 1 {
			t.Errorf("second %d: %g hits due, want %g (within 1)", sec, got[sec], want[sec])
		}
	}
	if float64(k) != total || uint64(s.ExpectedBuyers()) != k {
		t.Errorf("%d hits scheduled, expected buyers %d, want %g", k, s.ExpectedBuyers(), total)
	}
	// Pace: wait until the due time, no wait when late, stop at the end.
	due, _ := p.Due(100)
	if wait, stop := p.Pace(0, 100); stop || wait != due {
		t.Errorf("Pace(0, 100) = %s, %v; want %s, false", wait, stop, due)
	}
	if wait, stop := p.Pace(due+time.Second, 100); stop || wait != 0 {
		t.Errorf("Pace(late, 100) = %s, %v; want 0, false", wait, stop)
	}
	if _, stop := p.Pace(19*time.Second, k); !stop {
		t.Errorf("Pace after the last hit does not stop")
	}
	if got := p.Rate(16 * time.Second); got != 300 {
		t.Errorf("Rate(16s) = %g, want 300", got)
	}
	s.Buyers = 50
	capped := loadgen.NewPacer(s)
	if _, stop := capped.Pace(0, 50); !stop {
		t.Errorf("Pace at the buyer cap does not stop")
	}
	if _, stop := capped.Pace(0, 49); stop {
		t.Errorf("Pace before the buyer cap stops")
	}
}
