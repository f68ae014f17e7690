package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// OK reports whether the run settled and every invariant held (counts the checker marks as
// by design are allowed) and no process ended on its own.
func (r *RunResult) OK() bool {
	return len(r.Problems()) == 0
}

// Undersold is the units left unsold after settlement of SKUs for which buyers were refused as
// out of stock.
func (r *RunResult) Undersold() int64 {
	var n int64
	if r.Check != nil {
		for _, u := range r.Check.Undersell {
			n += u.Unsold
		}
	}
	return n
}

func (r *RunResult) unexpected() []Event {
	var out []Event
	for _, e := range r.Events {
		if e.What == "exited" {
			out = append(out, e)
		}
	}
	return out
}

// Problems lists why OK is false.
func (r *RunResult) Problems() []string {
	var out []string
	if !r.Settled {
		out = append(out, "did not settle (lag 0, nothing pending) within the scenario's settle time")
	}
	if r.CheckError != "" {
		out = append(out, "checker: "+r.CheckError)
	}
	if r.Check == nil && r.CheckError == "" {
		out = append(out, "the invariants were not checked (the run ended early)")
	}
	if r.NoUndersell && r.Undersold() > 0 {
		out = append(out, fmt.Sprintf("undersell: %d units left unsold while buyers were refused as out of stock", r.Undersold()))
	}
	if r.Check != nil {
		for _, inv := range r.Check.Invariants {
			if !inv.Holds {
				out = append(out, fmt.Sprintf("%s %s broken (count %d)", inv.ID, inv.Name, inv.Count))
			}
		}
	}
	if f := r.Extra["warehouse feed error"]; f != "" {
		out = append(out, "warehouse feed: "+f)
	}
	for _, e := range r.unexpected() {
		out = append(out, fmt.Sprintf("%s ended on its own: %s", e.Proc, e.Detail))
	}
	for _, c := range r.Chaos {
		switch {
		case c.Error != "":
			out = append(out, fmt.Sprintf("chaos step %s failed: %s", c.Step, c.Error))
		case !c.Confirmed:
			out = append(out, fmt.Sprintf("chaos step %s at %.1f s not confirmed: %s", c.Step, c.At.Seconds(), strings.Join(c.Evidence, "; ")))
		}
	}
	return out
}

// WriteJSON writes the run (summary, chaos, lag, invariants; not every outcome) to path.
func (r *RunResult) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// WritePlot writes the run's SVG plot to path.
func (r *RunResult) WritePlot(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(Plot("orderpipe end to end: "+r.Scenario, r.Summary.Timeline, r.Chaos)), 0o644)
}

func ms(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	case d < 10*time.Second:
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
}

func pct(p Percentiles) string {
	if p.N == 0 {
		return "none"
	}
	return fmt.Sprintf("%s / %s / %s / %s / %s (n=%d)", ms(p.P50), ms(p.P90), ms(p.P99), ms(p.P999), ms(p.Max), p.N)
}

func sortedCounts[K comparable](m map[K]int, name func(K) string) string {
	type kv struct {
		k string
		v int
	}
	var kvs []kv
	for k, v := range m {
		kvs = append(kvs, kv{name(k), v})
	}
	sort.Slice(kvs, func(i, j int) bool {
		if kvs[i].v != kvs[j].v {
			return kvs[i].v > kvs[j].v
		}
		return kvs[i].k < kvs[j].k
	})
	parts := make([]string, len(kvs))
	for i, e := range kvs {
		parts[i] = fmt.Sprintf("%s %d", e.k, e.v)
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// Markdown renders the run's report; plot is the SVG's path relative to the document ("" none).
func (r *RunResult) Markdown(level, plot string) string {
	var b strings.Builder
	p := func(f string, a ...any) { fmt.Fprintf(&b, f, a...) }
	s := r.Summary
	verdict := "**all invariants hold**"
	if !r.OK() {
		verdict = "**FAILED**: " + strings.Join(r.Problems(), "; ")
	}
	p("%s Scenario `%s`: %s\n\n", level, r.Scenario, verdict)
	p("Started %s; load %s, settled %v after %s more; machine load average at the start %.2f / %.2f / %.2f (1/5/15 min, %d CPUs).\n\n",
		r.Started.Format("2006-01-02 15:04:05 UTC"), r.LoadTook.Round(time.Second), r.Settled, r.SettleTook.Round(time.Second),
		r.Machine.Load1, r.Machine.Load5, r.Machine.Load15, r.Machine.CPUs)
	if plot != "" {
		p("![%s: arrival rate, accepted rate, p99 latency and lag over the run](%s)\n\n", r.Scenario, plot)
	}
	p("| measure | value |\n|---|---|\n")
	p("| submissions (first and duplicate) | %d: %d accepted, %d refused, %d errors, %d unknown |\n", s.Submissions, s.Accepted, s.Refused, s.Errors, s.Unknown)
	p("| accepted orders per second | %.0f on average over %.0f s, peak %.0f |\n", s.AcceptedPerSec, s.LoadSeconds, s.PeakAccepted)
	p("| intake latency p50 / p90 / p99 / p99.9 / max, every answer | %s |\n", pct(s.Intake))
	p("| intake latency, 202 answers | %s |\n", pct(s.IntakeAccepted))
	p("| intake latency, refusals | %s |\n", pct(s.IntakeRefused))
	p("| accept-to-confirm (Postgres `decided_at - placed_at`), confirmed orders | %s |\n", pct(s.AcceptToConfirm))
	p("| accept-to-decision, every decided order | %s |\n", pct(s.AcceptToDecide))
	p("| refusals by reason | %s |\n", sortedCounts(s.Refusals, func(k string) string { return k }))
	if len(s.ErrorReasons) > 0 {
		p("| errors and unknown outcomes by reason | %s |\n", sortedCounts(s.ErrorReasons, func(k string) string { return k }))
	}
	p("| HTTP statuses (final answers) | %s |\n", sortedCounts(s.Statuses, func(k int) string { return fmt.Sprint(k) }))
	p("| terminal states in Postgres | %s |\n", sortedCounts(s.Terminal, func(k string) string { return k }))
	keys := make([]string, 0, len(r.Extra))
	for k := range r.Extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p("| %s | %s |\n", k, r.Extra[k])
	}
	p("\n")
	if len(r.Chaos) > 0 {
		p("Chaos steps (evidence: what was observed to show each fault happened and hit something):\n\n| at | step | took | what was done | evidence | confirmed |\n|---|---|---|---|---|---|\n")
		for _, c := range r.Chaos {
			d := strings.TrimSuffix(strings.TrimSpace(c.Detail), ";")
			if c.Error != "" {
				d += " **error: " + c.Error + "**"
			}
			ev, ok := strings.Join(c.Evidence, "; "), "yes"
			if ev == "" {
				ev = "none"
			}
			if !c.Confirmed {
				ok = "**NO**"
			}
			p("| %.1f s | %s | %s | %s | %s | %s |\n", c.At.Seconds(), c.Step, ms(c.Took), strings.ReplaceAll(d, "|", "/"), strings.ReplaceAll(ev, "|", "/"), ok)
		}
		p("\n")
	}
	p("Lag over time (records not yet consumed; every 5 s):\n\n| t | buyers/s | accepted/s | p99 | critical lag | low-priority lag |\n|---|---|---|---|---|---|\n")
	for i, pt := range s.Timeline {
		if i%5 != 0 && i != len(s.Timeline)-1 {
			continue
		}
		p("| %d s | %.0f | %.0f | %s | %s | %s |\n", int(pt.At.Seconds()), pt.Offered, pt.Accepted, ms(pt.P99), lagStr(pt.CriticalLag), lagStr(pt.LowLag))
	}
	p("\n")
	if r.Check != nil {
		p("Invariants (checked from the outside after settling: Postgres, Redis, the topics, the payment simulator, the e-mail sink):\n\n")
		p("%s\n", strings.TrimSpace(r.Check.Markdown()))
	} else if r.CheckError != "" {
		p("The checker failed: %s\n", r.CheckError)
	}
	return b.String()
}

func lagStr(v int64) string {
	if v < 0 {
		return "?"
	}
	return fmt.Sprint(v)
}
