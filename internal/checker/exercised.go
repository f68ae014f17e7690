package checker

import (
	"fmt"
	"strings"

	"github.com/orderpipe/orderpipe/internal/loadgen"
)

// r0 fails a run that did not exercise the pipeline. Every invariant loops over accepted
// orders, holds or stock rows, so a run in which the load never reached the api, or the api
// refused everybody, would otherwise hold every invariant vacuously. The run must have
// submissions and accepted orders, at least half of its decided accepted orders must have
// been confirmed (a pipeline that cancels everything keeps I1-I7 too), and, when the outcomes carry
// the scenario's expectation (loadgen.Result.Expected), it must have played at least 95 % of the
// scenario's buyers and accepted at least the scenario's floor.
func (st *state) r0() InvariantResult {
	var ev evidence
	buyers, accepted := len(st.buyers), len(st.accepted)
	// Accepted orders not decided (lost, pending) are I2's; R0 looks at the decided ones.
	var confirmed, decided int
	for id := range st.accepted {
		if o, ok := st.orders[id]; ok && terminal(o.status) {
			decided++
			if o.status != "cancelled" {
				confirmed++
			}
		}
	}
	switch {
	case len(st.res.Outcomes) == 0:
		ev.add("the run has no submissions: nothing was played against the api")
	case accepted == 0:
		ev.add("no order was accepted (%d submissions by %d buyers: %s): nothing reached the pipeline", len(st.res.Outcomes), buyers, classes(st.res))
	case confirmed*2 < decided:
		ev.add("only %d of %d decided accepted orders were confirmed: the pipeline cancelled most of what it took", confirmed, decided)
	}
	if e := st.res.Expected; e != nil {
		if buyers*100 < e.Buyers*95 {
			ev.add("%d buyers played, the scenario brings %d", buyers, e.Buyers)
		}
		if accepted > 0 && accepted < e.MinAccepted {
			ev.add("%d orders accepted, far fewer than the scenario's floor of %d (a third of what it can sell)", accepted, e.MinAccepted)
		}
	}
	return ev.result("R0", "The run exercised the pipeline")
}

func classes(r *loadgen.Result) string {
	refused := r.Reasons(loadgen.ClassRefused)
	reasons := make([]string, 0, len(refused))
	for _, k := range sortedKeys(refused) {
		reasons = append(reasons, fmt.Sprintf("%s %d", k, refused[k]))
	}
	out := fmt.Sprintf("%d refused", r.Count(loadgen.ClassRefused))
	if len(reasons) > 0 {
		out += " (" + strings.Join(reasons, ", ") + ")"
	}
	return out + fmt.Sprintf(", %d errors, %d unknown", r.Count(loadgen.ClassError), r.Count(loadgen.ClassUnknown))
}
