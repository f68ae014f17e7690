package bench

import (
	"errors"
	"strings"
	"testing"
)

func TestNaiveStateProblems(t *testing.T) {
	t.Parallel()
	good := naiveState{stock: 100, onHand: 100, allocated: 40, orderRows: 40, units: 40, accepted: 40}
	tests := []struct {
		name  string
		state naiveState
		want  []string // substrings, one per expected problem
	}{
		{"books balance", good, nil},
		{"sold out exactly", naiveState{stock: 5, onHand: 5, allocated: 5, orderRows: 5, units: 5, accepted: 5}, nil},
		{"oversold", naiveState{stock: 5, onHand: 5, allocated: 7, orderRows: 7, units: 7, accepted: 7}, []string{"oversold 2 units"}},
		{"on_hand moved", naiveState{stock: 100, onHand: 90, allocated: 40, orderRows: 40, units: 40, accepted: 40}, []string{"on_hand changed"}},
		{"allocated without order rows", naiveState{stock: 100, onHand: 100, allocated: 41, orderRows: 40, units: 40, accepted: 40}, []string{"allocated 41 != units"}},
		{"a 202 without a row", naiveState{stock: 100, onHand: 100, allocated: 40, orderRows: 40, units: 40, accepted: 41}, []string{"40 rows, the client got 41 answers 202"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			assertProblems(t, tt.state.problems(), tt.want)
		})
	}
}

func TestIntakeStateProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		state intakeState
		want  []string
	}{
		{"books balance", intakeState{startATP: 100, atp: 60, held: 40, records: 40, accepted: 40}, nil},
		{"oversold below zero", intakeState{startATP: 10, atp: -2, held: 12, records: 12, accepted: 12}, []string{"oversold 2 units"}},
		{"units appeared", intakeState{startATP: 100, atp: 61, held: 40, records: 40, accepted: 40}, []string{"conservation broken"}},
		{"a refused order kept its hold", intakeState{startATP: 100, atp: 59, held: 41, records: 40, accepted: 40}, []string{"held 41 units"}},
		{"a 202 without a record", intakeState{startATP: 100, atp: 60, held: 40, records: 39, accepted: 40}, []string{"39 OrderPlaced records"}},
		{"a record without a 202", intakeState{startATP: 100, atp: 60, held: 40, records: 41, accepted: 40}, []string{"41 OrderPlaced records"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			assertProblems(t, tt.state.problems(), tt.want)
		})
	}
}

// assertProblems checks that got has one problem per want, each containing its substring ("" matches
// any).
func assertProblems(t *testing.T, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got problems %q, want %d problems like %q", got, len(want), want)
	}
	for i := range want {
		if !strings.Contains(got[i], want[i]) {
			t.Fatalf("problem %d is %q, want it to mention %q", i, got[i], want[i])
		}
	}
}

func TestStockCheckFailure(t *testing.T) {
	t.Parallel()
	if err := (stockCheck{arm: "x", state: "fine"}).failure(); err != nil {
		t.Fatalf("passing check: got %v, want nil", err)
	}
	for _, c := range []stockCheck{
		{arm: "x", problems: []string{"oversold 1 units"}},
		{arm: "x", err: errors.New("redis down")},
	} {
		if c.passed() {
			t.Fatalf("check %+v passed, want failed", c)
		}
		if err := c.failure(); !errors.Is(err, ErrOversell) {
			t.Fatalf("failure() = %v, want an error wrapping ErrOversell", err)
		}
	}
}

func TestParseInfoInt(t *testing.T) {
	info := "# Stats\r\ntotal_connections_received:12\r\ntotal_reads_processed:4711\r\ntotal_writes_processed:4700\r\n"
	if n, err := parseInfoInt(info, "total_reads_processed"); err != nil || n != 4711 {
		t.Fatalf("total_reads_processed = %d, %v; want 4711", n, err)
	}
	if _, err := parseInfoInt(info, "total_net_input_bytes"); err == nil {
		t.Fatal("a missing field parsed without error")
	}
}
