package bench

import (
	"errors"
	"fmt"
)

// ErrOversell reports that an arm's stock check failed: it sold more than it had, or its books
// do not add up. Run still returns the report, which shows what was found.
var ErrOversell = errors.New("stock check failed")

// naiveState is the naive design after its runs, and what the load generator saw.
type naiveState struct {
	stock     int64 // on_hand seeded before the runs
	onHand    int64
	allocated int64
	orderRows int64 // rows in naive_orders
	units     int64 // sum of their quantities
	accepted  int64 // 202 answers (1 unit each)
}

// problems lists every broken promise; none means the arm sold only what it had and every 202
// is an order row.
func (s naiveState) problems() []string {
	var p []string
	if s.allocated > s.onHand {
		p = append(p, fmt.Sprintf("oversold %d units: allocated %d > on_hand %d", s.allocated-s.onHand, s.allocated, s.onHand))
	}
	if s.onHand != s.stock {
		p = append(p, fmt.Sprintf("on_hand changed: got %d, seeded %d", s.onHand, s.stock))
	}
	if s.units != s.allocated {
		p = append(p, fmt.Sprintf("allocated %d != units in naive_orders %d", s.allocated, s.units))
	}
	if s.orderRows != s.accepted {
		p = append(p, fmt.Sprintf("naive_orders has %d rows, the client got %d answers 202", s.orderRows, s.accepted))
	}
	return p
}

func (s naiveState) String() string {
	return fmt.Sprintf("on_hand %d, allocated %d, order rows %d (%d units), answers 202: %d",
		s.onHand, s.allocated, s.orderRows, s.units, s.accepted)
}

// intakeState is the full intake after its runs (the api stopped), and what the load generator
// saw.
type intakeState struct {
	startATP int64 // ATP seeded in Redis before the runs
	atp      int64
	held     int64
	records  int64 // OrderPlaced records on orders.placed and orders.placed.priority
	accepted int64 // 202 answers (1 unit each)
}

// problems lists every broken promise: ATP + held must equal the starting ATP (conservation), ATP
// never negative, and every 202 is exactly one hold unit and one OrderPlaced record (a refused
// order holds nothing, I5).
func (s intakeState) problems() []string {
	var p []string
	if s.atp < 0 {
		p = append(p, fmt.Sprintf("oversold %d units: ATP is %d", -s.atp, s.atp))
	}
	if s.atp+s.held != s.startATP {
		p = append(p, fmt.Sprintf("conservation broken: ATP %d + held %d = %d, want the starting ATP %d", s.atp, s.held, s.atp+s.held, s.startATP))
	}
	if s.held != s.accepted {
		p = append(p, fmt.Sprintf("held %d units, the client got %d answers 202", s.held, s.accepted))
	}
	if s.records != s.accepted {
		p = append(p, fmt.Sprintf("%d OrderPlaced records, the client got %d answers 202", s.records, s.accepted))
	}
	return p
}

func (s intakeState) String() string {
	return fmt.Sprintf("starting ATP %d, ATP now %d, held %d, OrderPlaced records %d, answers 202: %d",
		s.startATP, s.atp, s.held, s.records, s.accepted)
}

// stockCheck is the outcome of one arm's check, for the report.
type stockCheck struct {
	arm      string
	state    string
	problems []string
	err      error // the state could not be read
}

func (c stockCheck) passed() bool { return c.err == nil && len(c.problems) == 0 }

// failure returns nil when the check passed, or an error wrapping ErrOversell.
func (c stockCheck) failure() error {
	switch {
	case c.err != nil:
		return fmt.Errorf("%s: %w: %w", c.arm, ErrOversell, c.err)
	case len(c.problems) > 0:
		return fmt.Errorf("%s: %w: %v", c.arm, ErrOversell, c.problems)
	}
	return nil
}
