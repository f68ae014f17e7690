package checker

import (
	"fmt"
	"slices"
	"strings"
)

// Markdown renders the report: the invariant table, the evidence of each broken invariant,
// the undersell table and the summary counters.
func (r *Report) Markdown() string {
	var b strings.Builder
	verdict := "all invariants hold"
	if !r.OK() {
		verdict = "**invariants broken**"
	}
	fmt.Fprintf(&b, "Checker verdict: %s.\n\n", verdict)
	b.WriteString("| id | invariant | holds | violations | by design |\n|---|---|---|---|---|\n")
	for _, i := range r.Invariants {
		holds := "yes"
		if !i.Holds {
			holds = "**NO**"
		}
		design := "-"
		if i.ByDesignCount > 0 {
			design = fmt.Sprintf("%d: %s", i.ByDesignCount, cell(i.ByDesign))
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %d | %s |\n", i.ID, i.Name, holds, i.Count, design)
	}
	for _, i := range r.Invariants {
		if i.Holds {
			continue
		}
		fmt.Fprintf(&b, "\n%s %s, evidence:\n\n", i.ID, i.Name)
		for _, e := range i.Evidence {
			fmt.Fprintf(&b, "- %s\n", e)
		}
	}
	b.WriteString("\nUndersell (units left unsold while out-of-stock refusals named the SKU): ")
	if len(r.Undersell) == 0 {
		b.WriteString("none.\n")
	} else {
		b.WriteString("\n\n| SKU | refused orders | refused units | unsold units |\n|---|---|---|---|\n")
		for _, u := range r.Undersell {
			fmt.Fprintf(&b, "| %s | %d | %d | %d |\n", u.SKU, u.RefusedOrders, u.RefusedUnits, u.Unsold)
		}
	}
	keys := make([]string, 0, len(r.Summary))
	for k := range r.Summary {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b.WriteString("\n| counter | value |\n|---|---|\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "| %s | %d |\n", k, r.Summary[k])
	}
	return b.String()
}

// cell makes s safe inside a Markdown table cell.
func cell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}
