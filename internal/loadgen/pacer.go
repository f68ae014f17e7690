package loadgen

import (
	"math"
	"time"
)

// Pacer paces the arrivals of a scenario for vegeta: buyer k (counting from 0) is due at the
// moment the integral of the arrival curve reaches k, whatever the answers to earlier buyers.
// That is the open model: a stalled server does not slow the arrivals down, so its stalls show
// in the latencies instead of hiding behind fewer requests (no coordinated omission). The pacer
// stops after the curve's last phase or after the scenario's buyer cap.
type Pacer struct {
	s   *Scenario
	max uint64
}

// NewPacer returns the pacer of s.
func NewPacer(s *Scenario) *Pacer {
	return &Pacer{s: s, max: uint64(s.ExpectedBuyers())}
}

// Pace implements vegeta.Pacer: how long to wait before hit number hits, given the time elapsed.
func (p *Pacer) Pace(elapsed time.Duration, hits uint64) (time.Duration, bool) {
	if hits >= p.max {
		return 0, true
	}
	due, ok := p.Due(hits)
	if !ok {
		return 0, true
	}
	if due <= elapsed {
		return 0, false
	}
	return due - elapsed, false
}

// Rate implements vegeta.Pacer: the arrival rate at elapsed.
func (p *Pacer) Rate(elapsed time.Duration) float64 { return p.s.RateAt(elapsed) }

// Due is when buyer k (from 0) arrives: the time t at which the expected arrivals reach k. It
// reports false when the curve ends before that.
func (p *Pacer) Due(k uint64) (time.Duration, bool) {
	r := float64(k)
	var start time.Duration
	for _, ph := range p.s.Arrival {
		d := ph.For.Duration
		total := ph.arrivals(d)
		if r < total {
			return start + ph.inverse(r), true
		}
		r -= total
		start += d
	}
	return 0, false
}

// arrivals is the expected arrivals in the first t of the phase.
func (ph Phase) arrivals(t time.Duration) float64 {
	if ph.Phase == "hold" {
		return ph.Rate * t.Seconds()
	}
	return (ph.From + ph.rateAt(t)) / 2 * t.Seconds()
}

// inverse is the time into the phase at which its expected arrivals reach r (0 <= r < total).
// For a linear rate from f with slope m = (to-from)/D the arrivals are f*t + m/2*t^2; the root
// 2r / (f + sqrt(f^2 + 2*m*r)) is the stable form for rising and falling rates alike.
func (ph Phase) inverse(r float64) time.Duration {
	if r <= 0 {
		return 0
	}
	var f, m float64
	if ph.Phase == "hold" {
		f = ph.Rate
	} else {
		f = ph.From
		m = (ph.To - ph.From) / ph.For.Seconds()
	}
	disc := f*f + 2*m*r
	if disc < 0 {
		disc = 0
	}
	den := f + math.Sqrt(disc)
	if den <= 0 {
		return ph.For.Duration
	}
	t := 2 * r / den
	return min(time.Duration(t*float64(time.Second)), ph.For.Duration)
}
