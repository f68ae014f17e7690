package orderctl_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/orderpipe/orderpipe/internal/orderctl"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

// trade-accounts add, list (table and JSON) and remove, as ops use them; removing an account that
// does not exist is an error that says so.
func TestTradeAccountsCommands(t *testing.T) {
	t.Parallel()
	_, url := testenv.Postgres(t)
	run := runner(t, map[string]string{"DATABASE_URL": url})
	for _, args := range [][]string{
		{"trade-accounts", "add", "garage-17", "--name", "Garage Müller"},
		{"trade-accounts", "add", "fleet-2"},
		{"trade-accounts", "add", "garage-17", "--name", "Müller & Sons"}, // renames
	} {
		if code, out := run(args...); code != orderctl.ExitOK || !strings.HasPrefix(out, "trade account "+args[2]+" (") {
			t.Fatalf("%v: exit %d, output %q", args, code, out)
		}
	}
	code, out := run("trade-accounts", "list", "--output", "json")
	var rows []orderctl.TradeAccountRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil || code != orderctl.ExitOK {
		t.Fatalf("list --output json: exit %d, %v\n%s", code, err, out)
	}
	if len(rows) != 2 || rows[0].CustomerID != "fleet-2" || rows[0].Name != "" || rows[1].CustomerID != "garage-17" ||
		rows[1].Name != "Müller & Sons" || rows[1].CreatedAt.IsZero() {
		t.Fatalf("list --output json: %+v, want fleet-2 (no name) and garage-17 renamed", rows)
	}
	code, out = run("trade-accounts", "list")
	lines := strings.Split(strings.TrimSpace(timestamp.ReplaceAllString(out, "T")), "\n")
	if code != orderctl.ExitOK || len(lines) != 3 || strings.Fields(lines[0])[0] != "CUSTOMER" ||
		strings.Join(strings.Fields(lines[1]), " ") != "fleet-2 - T" || strings.Join(strings.Fields(lines[2]), " ") != "garage-17 Müller & Sons T" {
		t.Fatalf("list: exit %d\n%s", code, out)
	}
	if code, out := run("trade-accounts", "remove", "fleet-2"); code != orderctl.ExitOK || out != "removed trade account fleet-2\n" {
		t.Fatalf("remove: exit %d, %q", code, out)
	}
	if code, out := run("trade-accounts", "remove", "fleet-2"); code != orderctl.ExitError || !strings.Contains(out, "fleet-2 has no trade account") {
		t.Fatalf("remove again: exit %d, %q; want 1 saying fleet-2 has no trade account", code, out)
	}
	if _, out := run("trade-accounts", "list", "--output", "json"); !strings.Contains(out, "garage-17") || strings.Contains(out, "fleet-2") {
		t.Fatalf("after the removal: %s", out)
	}
}

func TestTradeAccountsBadUsage(t *testing.T) {
	t.Parallel()
	badUsage(t, []usageCase{
		{[]string{"trade-accounts"}, "trade-accounts: want a subcommand: add, list or remove"},
		{[]string{"trade-accounts", "add"}, "accepts 1 arg"},
		{[]string{"trade-accounts", "add", strings.Repeat("x", 65)}, "CUSTOMER_ID: want 1 to 64 characters, got 65"},
		{[]string{"trade-accounts", "add", "garage-17", "--name", strings.Repeat("n", 201)}, "--name: want at most 200 characters"},
		{[]string{"trade-accounts", "list", "--output", "yaml"}, `--output: want table or json, got "yaml"`},
		{[]string{"trade-accounts", "remove"}, "accepts 1 arg"},
	})
}
