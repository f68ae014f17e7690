package loadgen

import (
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"
)

// WriteSummary writes the run's summary table: submissions by class and reason, the latency of
// the final attempts, and the accepted orders per second.
func (r *Result) WriteSummary(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "scenario %s, run %s: %d submissions (%d duplicates, %d retried) in %s\n",
		r.Scenario, r.RunID, len(r.Outcomes), r.countIf(func(o Outcome) bool { return o.Duplicate }),
		r.countIf(func(o Outcome) bool { return len(o.Tries) > 0 }), r.Elapsed.Round(time.Millisecond))
	fmt.Fprintln(tw, "CLASS\tREASON\tSUBMISSIONS")
	for _, c := range []string{ClassAccepted, ClassRefused, ClassError, ClassUnknown} {
		reasons := r.Reasons(c)
		fmt.Fprintf(tw, "%s\t\t%d\n", c, r.Count(c))
		keys := make([]string, 0, len(reasons))
		for k := range reasons {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if k != "" {
				fmt.Fprintf(tw, "\t%s\t%d\n", k, reasons[k])
			}
		}
	}
	var lat []time.Duration
	for _, o := range r.Outcomes {
		if o.Class != ClassUnknown {
			lat = append(lat, o.Latency)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	rate := 0.0
	if r.Elapsed > 0 {
		rate = float64(r.Count(ClassAccepted)) / r.Elapsed.Seconds()
	}
	_, err := fmt.Fprintf(w, "latency of the answered final attempts: p50 %s, p99 %s, max %s\naccepted orders per second: %.1f\n",
		quantile(lat, 0.5).Round(10*time.Microsecond), quantile(lat, 0.99).Round(10*time.Microsecond),
		quantile(lat, 1).Round(10*time.Microsecond), rate)
	return err
}

func (r *Result) countIf(f func(Outcome) bool) int {
	n := 0
	for _, o := range r.Outcomes {
		if f(o) {
			n++
		}
	}
	return n
}
