package e2e

import (
	"math"
	"sort"
	"time"

	"github.com/orderpipe/orderpipe/internal/loadgen"
)

// Percentiles of a set of durations (nearest rank, exact).
type Percentiles struct {
	N    int           `json:"n"`
	P50  time.Duration `json:"p50_ns"`
	P90  time.Duration `json:"p90_ns"`
	P99  time.Duration `json:"p99_ns"`
	P999 time.Duration `json:"p999_ns"`
	Max  time.Duration `json:"max_ns"`
}

// PercentilesOf computes the percentiles of ds (which it sorts).
func PercentilesOf(ds []time.Duration) Percentiles {
	if len(ds) == 0 {
		return Percentiles{}
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	q := func(p float64) time.Duration {
		i := int(math.Ceil(p*float64(len(ds)))) - 1
		if i < 0 {
			i = 0
		}
		return ds[i]
	}
	return Percentiles{N: len(ds), P50: q(0.5), P90: q(0.9), P99: q(0.99), P999: q(0.999), Max: ds[len(ds)-1]}
}

// Point is one second of the run for the plot and the lag table.
type Point struct {
	At          time.Duration `json:"at_ns"`
	Offered     float64       `json:"offered"`
	Accepted    float64       `json:"accepted"`
	Refused     float64       `json:"refused"`
	P99         time.Duration `json:"p99_ns"`
	CriticalLag int64         `json:"critical_lag"` // order-worker + inventory-sync; -1 unknown
	LowLag      int64         `json:"low_lag"`      // notifier + reports; -1 unknown
}

// Summary is the numbers of a run's report.
type Summary struct {
	Submissions     int            `json:"submissions"`
	Accepted        int            `json:"accepted"`
	Refused         int            `json:"refused"`
	Errors          int            `json:"errors"`
	Unknown         int            `json:"unknown"`
	LoadSeconds     float64        `json:"load_seconds"`
	AcceptedPerSec  float64        `json:"accepted_per_second"`
	PeakAccepted    float64        `json:"peak_accepted_per_second"`
	Intake          Percentiles    `json:"intake_latency"`          // every answered submission (last attempt)
	IntakeAccepted  Percentiles    `json:"intake_latency_accepted"` // 202 answers
	IntakeRefused   Percentiles    `json:"intake_latency_refused"`  // deliberate refusals
	AcceptToConfirm Percentiles    `json:"accept_to_confirm"`       // confirmed orders: decided_at - placed_at
	AcceptToDecide  Percentiles    `json:"accept_to_decision"`      // every decided order
	Refusals        map[string]int `json:"refusals_by_reason"`
	ErrorReasons    map[string]int `json:"errors_by_reason,omitempty"`
	Statuses        map[int]int    `json:"statuses"`
	Terminal        map[string]int `json:"terminal_states"` // confirmed, cancelled:<reason>, shipped
	Timeline        []Point        `json:"timeline"`
}

// Summarize computes the report numbers of a run.
func Summarize(r *RunResult) Summary {
	s := Summary{Refusals: map[string]int{}, ErrorReasons: map[string]int{}, Statuses: map[int]int{}, Terminal: map[string]int{}}
	var all, acc, ref []time.Duration
	if r.Load != nil {
		s.LoadSeconds = r.Load.Elapsed.Seconds()
		for _, o := range r.Load.Outcomes {
			s.Submissions++
			s.Statuses[o.Status]++
			switch o.Class {
			case loadgen.ClassAccepted:
				s.Accepted++
				acc = append(acc, o.Latency)
				all = append(all, o.Latency)
			case loadgen.ClassRefused:
				s.Refused++
				s.Refusals[o.Reason]++
				ref = append(ref, o.Latency)
				all = append(all, o.Latency)
			case loadgen.ClassError:
				s.Errors++
				s.ErrorReasons[o.Reason]++
				all = append(all, o.Latency)
			default:
				s.Unknown++
				s.ErrorReasons["unknown: "+o.Reason]++
			}
		}
		if s.LoadSeconds > 0 {
			s.AcceptedPerSec = float64(s.Accepted) / s.LoadSeconds
		}
	}
	s.Intake, s.IntakeAccepted, s.IntakeRefused = PercentilesOf(all), PercentilesOf(acc), PercentilesOf(ref)
	var conf, dec []time.Duration
	for _, d := range r.Decisions {
		lat := d.Decided.Sub(d.PlacedAt)
		dec = append(dec, lat)
		key := d.Status
		if d.Reason != "" {
			key += ":" + d.Reason
		}
		s.Terminal[key]++
		if d.Status == "confirmed" || d.Status == "shipped" {
			conf = append(conf, lat)
		}
	}
	s.AcceptToConfirm, s.AcceptToDecide = PercentilesOf(conf), PercentilesOf(dec)
	s.Timeline = timeline(r)
	for _, p := range s.Timeline {
		s.PeakAccepted = max(s.PeakAccepted, p.Accepted)
	}
	return s
}

func timeline(r *RunResult) []Point {
	var pts []Point
	if r.Load != nil {
		for _, smp := range r.Load.Timeline {
			pts = append(pts, Point{At: smp.At, Offered: smp.Offered, Accepted: smp.Accepted, Refused: smp.Refused, P99: smp.P99, CriticalLag: -1, LowLag: -1})
		}
	}
	// Lag samples go to the second they were taken in; seconds after the load get their own point.
	for _, l := range r.Lag {
		sec := int(l.At / time.Second)
		for len(pts) <= sec {
			pts = append(pts, Point{At: time.Duration(len(pts)) * time.Second, CriticalLag: -1, LowLag: -1})
		}
		crit, low := int64(0), int64(0)
		for g, v := range l.Lag {
			if v < 0 {
				crit, low = -1, -1
				break
			}
			switch g {
			case "order-worker", "inventory-sync":
				crit += v
			default:
				low += v
			}
		}
		pts[sec].CriticalLag, pts[sec].LowLag = crit, low
	}
	return pts
}
