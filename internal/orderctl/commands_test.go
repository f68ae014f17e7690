package orderctl_test

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/orderpipe/orderpipe/internal/orderctl"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/redisstore"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

// runner runs orderctl with env and returns its exit code and output.
func runner(t *testing.T, env map[string]string) func(args ...string) (int, string) {
	return func(args ...string) (int, string) {
		var out bytes.Buffer
		err := orderctl.Run(t.Context(), args, func(k string) string { return env[k] }, &out)
		if err != nil {
			out.WriteString("error: " + err.Error() + "\n")
		}
		return orderctl.Code(err), out.String()
	}
}

var timestamp = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`)

// keys create prints the token once; keys list shows ids, names, scopes and times, never a
// secret (golden, with ids and times masked), also as JSON; keys revoke marks a key revoked.
func TestKeysGolden(t *testing.T) {
	t.Parallel()
	_, url := testenv.Postgres(t)
	run := runner(t, map[string]string{"DATABASE_URL": url})
	var tokens []string
	for _, args := range [][]string{
		{"keys", "create", "--name", "checkout", "--scopes", "orders:write,orders:read"},
		{"keys", "create", "--name", "reporting", "--scopes", "reports:read"},
	} {
		code, out := run(args...)
		if code != orderctl.ExitOK || !regexp.MustCompile(`^op_[0-9a-f]{12}_[A-Za-z0-9_-]{43}\n$`).MatchString(out) {
			t.Fatalf("%v: exit %d, output %q, want 0 and one token", args, code, out)
		}
		tokens = append(tokens, strings.TrimSpace(out))
	}
	code, out := run("keys", "list", "--output", "json")
	var keys []orderctl.KeyRow
	if err := json.Unmarshal([]byte(out), &keys); err != nil || code != orderctl.ExitOK {
		t.Fatalf("keys list --output json: exit %d, %v\n%s", code, err, out)
	}
	if len(keys) != 2 || keys[0].Name != "checkout" || keys[1].Name != "reporting" || keys[0].RevokedAt != nil ||
		!strings.HasPrefix(tokens[0], "op_"+keys[0].ID+"_") || strings.Contains(out, tokens[0][16:]) {
		t.Fatalf("keys list --output json: got %+v, want checkout and reporting with the tokens' ids and no secret", keys)
	}
	mask := func(s string) string { // same widths, so the columns stay aligned
		s = strings.ReplaceAll(s, keys[0].ID, "aaaaaaaaaaaa")
		s = strings.ReplaceAll(s, keys[1].ID, "bbbbbbbbbbbb")
		return timestamp.ReplaceAllString(s, "YYYY-MM-DDThh:mm:ssZ")
	}
	if code, out = run("keys", "revoke", keys[1].ID); code != orderctl.ExitOK {
		t.Fatalf("keys revoke: exit %d\n%s", code, out)
	}
	got := mask(out)
	code, out = run("keys", "list")
	if code != orderctl.ExitOK {
		t.Fatalf("keys list: exit %d\n%s", code, out)
	}
	golden(t, "keys_list.golden", got+mask(out))
}

// Bad arguments of keys exit 2 with a message saying what is wrong.
func TestKeysBadUsage(t *testing.T) {
	t.Parallel()
	badUsage(t, []usageCase{
		{[]string{"keys"}, "keys: want a subcommand: create, list or revoke"},
		{[]string{"keys", "rotate"}, `unknown command "rotate"`},
		{[]string{"keys", "create", "--scopes", "orders:read"}, "--name is required"},
		{[]string{"keys", "create", "--name", "x", "--scopes", "orders:delete"}, "--scopes: "},
		{[]string{"keys", "create", "--name", "x"}, "--scopes: "},
		{[]string{"keys", "list", "--output", "yaml"}, "--output: want table or json"},
		{[]string{"keys", "list", "extra"}, `unknown command "extra"`},
		{[]string{"keys", "revoke"}, "accepts 1 arg(s), received 0"},
	})
}

// migrate applies nothing on a migrated schema; --status lists every migration as applied
// (golden, table and JSON).
func TestMigrateGolden(t *testing.T) {
	t.Parallel()
	_, url := testenv.Postgres(t)
	run := runner(t, map[string]string{"DATABASE_URL": url})
	code, out := run("migrate")
	if code != orderctl.ExitOK || out != "migrations: up to date\n" {
		t.Fatalf("migrate: exit %d, output %q, want 0 and up to date", code, out)
	}
	code, out = run("migrate", "--status")
	if code != orderctl.ExitOK {
		t.Fatalf("migrate --status: exit %d\n%s", code, out)
	}
	golden(t, "migrate_status.golden", out)
	code, out = run("migrate", "--status", "--output", "json")
	var rows []orderctl.MigrationRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil || code != orderctl.ExitOK || len(rows) == 0 {
		t.Fatalf("migrate --status --output json: exit %d, %v\n%s", code, err, out)
	}
	for _, r := range rows {
		if !r.Applied || r.Version < 1 || r.Name == "" {
			t.Fatalf("migration %+v, want applied", r)
		}
	}
}

// Bad arguments of migrate exit 2.
func TestMigrateBadUsage(t *testing.T) {
	t.Parallel()
	badUsage(t, []usageCase{
		{[]string{"migrate", "up"}, `unknown command "up"`},
		{[]string{"migrate", "--status", "--output", "yaml"}, "--output: want table or json"},
		{[]string{"migrate", "--output", "json"}, "--output json goes with --status"},
		{[]string{"migrate", "--down"}, "unknown flag: --down"},
	})
}

// reconcile prints the drift (exit 3) and the repair with before and after (golden).
func TestReconcileGolden(t *testing.T) {
	t.Parallel()
	pool, dbURL := testenv.Postgres(t)
	rdb, prefix := testenv.Redis(t)
	cluster := testenv.Kafka(t)
	ctx := t.Context()
	if _, err := postgres.NewCatalogStore(pool).UpsertMany(ctx, []postgres.Product{
		{SKU: "BRK-PAD-1001", Name: "Brake pads", Category: "brakes", Brand: "Brembo", PriceMinor: 4990, Currency: "EUR", Active: true},
		{SKU: "FLT-OIL-2001", Name: "Oil filter", Category: "filters", Brand: "Mann", PriceMinor: 899, Currency: "EUR", Active: true},
		{SKU: "BAT-5001", Name: "Battery", Category: "batteries", Brand: "Varta", PriceMinor: 12990, Currency: "EUR", Active: true},
	}); err != nil {
		t.Fatal(err)
	}
	stock := map[string]int64{"BRK-PAD-1001": 10, "FLT-OIL-2001": 4, "BAT-5001": 6}
	if _, err := postgres.NewStockStore(pool).SeedMissing(ctx, stock); err != nil {
		t.Fatal(err)
	}
	store := redisstore.New(rdb, prefix)
	if _, err := store.SeedStock(ctx, map[string]int64{"BRK-PAD-1001": 10, "FLT-OIL-2001": 4}); err != nil { // BAT-5001 lost
		t.Fatal(err)
	}
	if err := store.SetStock(ctx, "FLT-OIL-2001", 1); err != nil { // 3 units too few
		t.Fatal(err)
	}
	run := runner(t, map[string]string{"DATABASE_URL": dbURL, "REDIS_ADDRS": rdb.Options().Addr, "REDIS_KEY_PREFIX": prefix,
		"KAFKA_BROKERS": strings.Join(cluster.ListenAddrs(), ",")})
	code, check := run("reconcile")
	if code != orderctl.ExitDiff {
		t.Fatalf("reconcile: exit %d, want 3\n%s", code, check)
	}
	code, repair := run("reconcile", "--repair", "--settle", "10ms")
	if code != orderctl.ExitOK {
		t.Fatalf("reconcile --repair: exit %d, want 0\n%s", code, repair)
	}
	golden(t, "reconcile.golden", "$ orderctl reconcile\n"+check+"$ orderctl reconcile --repair\n"+repair)
}

// Bad arguments of reconcile exit 2.
func TestReconcileBadUsage(t *testing.T) {
	t.Parallel()
	badUsage(t, []usageCase{
		{[]string{"reconcile", "--output", "yaml"}, "--output: want table or json"},
		{[]string{"reconcile", "now"}, `unknown command "now"`},
		{[]string{"reconcile", "--settle", "soon"}, "invalid argument"},
	})
}

// Every command refuses an unknown flag and an unknown command with exit 2 and says so; bad
// arguments of lag and replay say what is wrong.
func TestBadUsageEverywhere(t *testing.T) {
	t.Parallel()
	cases := []usageCase{
		{[]string{"nosuch"}, `unknown command "nosuch"`},
		{[]string{"lag", "--output", "yaml"}, "--output: want table or json"},
		{[]string{"replay", "--group", "order-worker"}, "want exactly one target"},
		{[]string{"replay", "--group", "order-worker", "--to-time", "yesterday"}, "--to-time: want RFC 3339"},
		{[]string{"replay", "--to-start"}, "--group is required"},
		{[]string{"replay", "--group", "someone-else", "--to-start"}, "is not an orderpipe group"},
		{[]string{"replay", "--group", "order-worker", "--to-offset", "0:5"}, "name the topic"},
	}
	for _, cmd := range [][]string{
		{"env"}, {"migrate"}, {"keys", "list"}, {"keys", "create"}, {"keys", "revoke"}, {"topics"}, {"broker"}, {"seed"},
		{"dev"}, {"paysim"}, {"reconcile"}, {"mailsink"}, {"bench"}, {"dlq", "list"}, {"dlq", "count"}, {"lag"},
		{"replay"}, {"replay", "range"}, {"catalog", "import"},
	} {
		cases = append(cases, usageCase{append(append([]string{}, cmd...), "--no-such-flag"), "unknown flag: --no-such-flag"})
	}
	badUsage(t, cases)
}

// Every read-only command takes --output table|json the same way: the flag defaults to table,
// and any other value is refused with exit 2 and the same message.
func TestOutputFlagEverywhere(t *testing.T) {
	t.Parallel()
	readOnly := [][]string{
		{"topics"}, {"lag"}, {"replay", "--group", "order-worker", "--to-start"},
		{"replay", "range", "--group", "order-worker", "--since", "1h"},
		{"dlq", "list", "--group", "order-worker"}, {"dlq", "count", "--group", "order-worker"},
		{"reconcile"}, {"keys", "list"}, {"migrate", "--status"}, {"catalog", "import", "testdata/catalog_import.csv"},
	}
	var cases []usageCase
	for _, args := range readOnly {
		cases = append(cases, usageCase{append(append([]string{}, args...), "--output", "xml"), `--output: want table or json, got "xml"`})
		var help bytes.Buffer
		if err := orderctl.Run(t.Context(), append(append([]string{}, args...), "--help"), func(string) string { return "" }, &help); err != nil {
			t.Fatalf("%v --help: %v", args, err)
		}
		if !strings.Contains(help.String(), `--output string`) || !strings.Contains(help.String(), `table or json (default "table")`) {
			t.Fatalf("%v --help does not document --output table|json with default table:\n%s", args, help.String())
		}
	}
	badUsage(t, cases)
}

// seed loads the demo catalog, stock and Redis availability once; a second run changes nothing
// and says so (golden).
func TestSeedGolden(t *testing.T) {
	t.Parallel()
	_, url := testenv.Postgres(t)
	rdb, prefix := testenv.Redis(t)
	run := runner(t, map[string]string{"DATABASE_URL": url, "REDIS_ADDRS": rdb.Options().Addr, "REDIS_KEY_PREFIX": prefix})
	code, first := run("seed")
	if code != orderctl.ExitOK {
		t.Fatalf("seed: exit %d\n%s", code, first)
	}
	code, second := run("seed")
	if code != orderctl.ExitOK {
		t.Fatalf("seed again: exit %d\n%s", code, second)
	}
	golden(t, "seed.golden", "$ orderctl seed\n"+first+"$ orderctl seed\n"+second)
}
