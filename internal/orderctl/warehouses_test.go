package orderctl_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/orderpipe/orderpipe/internal/orderctl"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

// warehouses add (a generated secret printed once, a secret from a file, or unsigned), list
// (table and JSON, never a secret) and remove, as ops use them; adding a registered warehouse
// again is refused unless --replace, and removing an unknown one says so.
func TestWarehousesCommands(t *testing.T) {
	t.Parallel()
	pool, url := testenv.Postgres(t)
	run := runner(t, map[string]string{"DATABASE_URL": url})
	code, out := run("warehouses", "add", "WH-BER-1", "--name", "Berlin")
	generated := regexp.MustCompile(`(?m)^whsec_[A-Za-z0-9_-]{43}$`).FindString(out)
	if code != orderctl.ExitOK || !strings.HasPrefix(out, "warehouse WH-BER-1 registered;") || generated == "" {
		t.Fatalf("add: exit %d, output %q; want the generated secret", code, out)
	}
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte("whsec-from-a-file-0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out := run("warehouses", "add", "WH-HAM-2", "--secret-file", secretFile); code != orderctl.ExitOK || !strings.Contains(out, "WH-HAM-2 registered with the secret from") {
		t.Fatalf("add --secret-file: exit %d, %q", code, out)
	}
	if code, out := run("warehouses", "add", "WH-OPEN", "--unsigned"); code != orderctl.ExitOK || !strings.Contains(out, "WH-OPEN registered, unsigned") {
		t.Fatalf("add --unsigned: exit %d, %q", code, out)
	}
	if code, out := run("warehouses", "add", "WH-BER-1"); code != orderctl.ExitError || !strings.Contains(out, "WH-BER-1 is registered already; --replace") {
		t.Fatalf("add again: exit %d, %q; want 1 pointing at --replace", code, out)
	}
	ws, err := postgres.NewInventoryStore(pool).Warehouses(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{}
	for _, w := range ws {
		secrets[w.ID] = string(w.Secret)
	}
	if secrets["WH-BER-1"] != generated || secrets["WH-HAM-2"] != "whsec-from-a-file-0123" || secrets["WH-OPEN"] != "" || len(ws) != 3 {
		t.Fatalf("stored: %v; want the generated secret, the file's (without its newline), none", secrets)
	}
	code, out = run("warehouses", "list", "--output", "json")
	var rows []orderctl.WarehouseRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil || code != orderctl.ExitOK {
		t.Fatalf("list --output json: exit %d, %v\n%s", code, err, out)
	}
	if len(rows) != 3 || rows[0].WarehouseID != "WH-BER-1" || rows[0].Name != "Berlin" || !rows[0].Signed || rows[0].CreatedAt.IsZero() || rows[2].WarehouseID != "WH-OPEN" || rows[2].Signed {
		t.Fatalf("list --output json: %+v", rows)
	}
	code, out = run("warehouses", "list")
	lines := strings.Split(strings.TrimSpace(timestamp.ReplaceAllString(out, "T")), "\n")
	if code != orderctl.ExitOK || len(lines) != 4 || strings.Join(strings.Fields(lines[0]), " ") != "WAREHOUSE NAME SIGNED SINCE" ||
		strings.Join(strings.Fields(lines[1]), " ") != "WH-BER-1 Berlin yes T" || strings.Join(strings.Fields(lines[3]), " ") != "WH-OPEN - no T" {
		t.Fatalf("list: exit %d\n%s", code, out)
	}
	if strings.Contains(out, "whsec") {
		t.Fatalf("list shows a secret:\n%s", out)
	}
	if code, out := run("warehouses", "add", "WH-BER-1", "--unsigned", "--replace"); code != orderctl.ExitOK {
		t.Fatalf("add --replace: exit %d, %q", code, out)
	}
	if code, out := run("warehouses", "remove", "WH-OPEN"); code != orderctl.ExitOK || out != "removed warehouse WH-OPEN\n" {
		t.Fatalf("remove: exit %d, %q", code, out)
	}
	if code, out := run("warehouses", "remove", "WH-OPEN"); code != orderctl.ExitError || !strings.Contains(out, "warehouse WH-OPEN is not registered") {
		t.Fatalf("remove again: exit %d, %q", code, out)
	}
}

func TestWarehousesBadUsage(t *testing.T) {
	t.Parallel()
	short := filepath.Join(t.TempDir(), "short")
	if err := os.WriteFile(short, []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badUsage(t, []usageCase{
		{[]string{"warehouses"}, "warehouses: want a subcommand: add, list or remove"},
		{[]string{"warehouses", "add"}, "accepts 1 arg"},
		{[]string{"warehouses", "add", "WH 1"}, "WAREHOUSE_ID: want 1 to 64"},
		{[]string{"warehouses", "add", strings.Repeat("w", 65)}, "WAREHOUSE_ID: want 1 to 64"},
		{[]string{"warehouses", "add", "WH-1", "--unsigned", "--secret-file", short}, "want at most one"},
		{[]string{"warehouses", "add", "WH-1", "--secret-file", short}, "at least 16 bytes, got 5"},
		{[]string{"warehouses", "add", "WH-1", "--name", strings.Repeat("n", 201)}, "--name: want at most 200 characters"},
		{[]string{"warehouses", "list", "--output", "yaml"}, `--output: want table or json, got "yaml"`},
		{[]string{"warehouses", "remove"}, "accepts 1 arg"},
	})
}
