package orderctl_test

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderpipe/orderpipe/internal/checker"
	"github.com/orderpipe/orderpipe/internal/loadgen"
	"github.com/orderpipe/orderpipe/internal/mailsink"
	"github.com/orderpipe/orderpipe/internal/orderctl"
	"github.com/orderpipe/orderpipe/internal/paysim"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/redisstore"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

// checkFixture starts the sources orderctl check reads (a Postgres schema with one SKU, its
// Redis counters, a broker, the payment simulator and the mail sink) and returns their settings.
func checkFixture(t *testing.T) map[string]string {
	t.Helper()
	env, _, _ := checkSources(t)
	return env
}

// checkSources is checkFixture that also returns the Postgres pool and the Redis store, for
// tests that plant orders.
func checkSources(t *testing.T) (map[string]string, *pgxpool.Pool, *redisstore.Store) {
	t.Helper()
	pool, dbURL := testenv.Postgres(t)
	rdb, prefix := testenv.Redis(t)
	cluster := testenv.Kafka(t)
	sim := httptest.NewServer(paysim.New(paysim.Config{}).Handler())
	t.Cleanup(sim.Close)
	sink, err := mailsink.Start(mailsink.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sink.Close() })
	mail := httptest.NewServer(sink.Handler())
	t.Cleanup(mail.Close)
	if _, err := postgres.NewCatalogStore(pool).UpsertMany(t.Context(), []postgres.Product{{SKU: "HOT-1", Name: "Hot", Category: "brakes", Brand: "T", PriceMinor: 100, Currency: "EUR", Active: true}}); err != nil {
		t.Fatal(err)
	}
	if err := postgres.NewStockStore(pool).Set(t.Context(), "HOT-1", 5); err != nil {
		t.Fatal(err)
	}
	store := redisstore.New(rdb, prefix)
	if err := store.SetStock(t.Context(), "HOT-1", 5); err != nil {
		t.Fatal(err)
	}
	return map[string]string{"DATABASE_URL": dbURL, "REDIS_ADDRS": rdb.Options().Addr, "REDIS_KEY_PREFIX": prefix,
		"KAFKA_BROKERS": strings.Join(cluster.ListenAddrs(), ","), "PAYMENT_URL": sim.URL, "MAIL_URL": mail.URL}, pool, store
}

func writeResult(t *testing.T, res *loadgen.Result) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "outcomes.json")
	var b bytes.Buffer
	if err := res.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func runCheck(t *testing.T, env map[string]string, args ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	err := orderctl.Run(t.Context(), append([]string{"check"}, args...), func(k string) string { return env[k] }, &out)
	if err != nil {
		out.WriteString("error: " + err.Error() + "\n")
	}
	return orderctl.Code(err), out.String()
}

// A run in which one buyer was sold one unit (confirmed, allocated, Redis settled) and one was
// refused: every invariant holds (exit 0), and the table is the golden one.
func TestCheckCommandHolds(t *testing.T) {
	t.Parallel()
	env, pool, store := checkSources(t)
	const id = "00000000-0000-4000-8000-000000000001"
	for _, q := range []string{
		`INSERT INTO orders (id, status, customer_id, email, priority, currency, subtotal_minor, shipping_minor, total_minor,
			shipping_address, placed_at, hold_deadline, decided_at)
			VALUES ('` + id + `', 'confirmed', 'lg-0a0b0c0d-0', 'b@example.com', 'standard', 'EUR', 100, 0, 100, '{}', now(), now(), now())`,
		`INSERT INTO order_lines (order_id, line_no, sku, name, quantity, unit_price_minor) VALUES ('` + id + `', 1, 'HOT-1', 'Hot', 1, 100)`,
		`INSERT INTO allocations (order_id, sku, quantity) VALUES ('` + id + `', 'HOT-1', 1)`,
		`UPDATE stock SET allocated = allocated + 1 WHERE sku = 'HOT-1'`,
	} {
		if _, err := pool.Exec(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := store.SetStock(t.Context(), "HOT-1", 4); err != nil {
		t.Fatal(err)
	}
	res := &loadgen.Result{Scenario: "golden", RunID: "0a0b0c0d", Started: time.Unix(0, 0).UTC(), Stock: map[string]int64{"HOT-1": 5},
		Outcomes: []loadgen.Outcome{
			{Buyer: 0, IdempotencyKey: "lg-0a0b0c0d-0", CustomerID: "lg-0a0b0c0d-0", OrderID: id, Lines: []loadgen.Line{{SKU: "HOT-1", Qty: 1}},
				Token: "tok_visa_x", Class: loadgen.ClassAccepted, Status: 202, Attempts: 1},
			{Buyer: 1, IdempotencyKey: "lg-0a0b0c0d-1", CustomerID: "lg-0a0b0c0d-1", Lines: []loadgen.Line{{SKU: "HOT-1", Qty: 1}},
				Token: "tok_visa_x", Class: loadgen.ClassRefused, Status: 429, Reason: "rate-limited", Attempts: 1}},
		Expected: &loadgen.Expectation{Buyers: 2, MinAccepted: 1}}
	code, out := runCheck(t, env, "--outcomes", writeResult(t, res))
	if code != 0 {
		t.Fatalf("exit %d, want 0:\n%s", code, out)
	}
	dlqGolden(t, "check_table.golden", out)
}

// A run in which nothing was accepted holds every invariant over zero orders; it must not pass:
// R0 is broken, exit code 1. (Before R0 this exact run was the golden passing one.)
func TestCheckCommandNothingAccepted(t *testing.T) {
	t.Parallel()
	env := checkFixture(t)
	res := &loadgen.Result{Scenario: "empty", RunID: "0a0b0c10", Stock: map[string]int64{"HOT-1": 5},
		Outcomes: []loadgen.Outcome{{Buyer: 0, IdempotencyKey: "lg-0a0b0c10-0", CustomerID: "lg-0a0b0c10-0", Lines: []loadgen.Line{{SKU: "HOT-1", Qty: 1}},
			Token: "tok_visa_x", Class: loadgen.ClassRefused, Status: 429, Reason: "rate-limited", Attempts: 1}}}
	code, out := runCheck(t, env, "--outcomes", writeResult(t, res))
	if code != orderctl.ExitError || !strings.Contains(out, "| R0 | The run exercised the pipeline | **NO** | 1 |") ||
		!strings.Contains(out, "no order was accepted (1 submissions by 1 buyers: 1 refused (rate-limited 1), 0 errors, 0 unknown)") ||
		!strings.Contains(out, "error: check: 1 invariant(s) broken") {
		t.Fatalf("exit %d, want 1 with R0 broken:\n%s", code, out)
	}
}

// A 202 the system lost breaks I2: exit code 1, the evidence names the order, in the table and in
// JSON.
func TestCheckCommandBroken(t *testing.T) {
	t.Parallel()
	env := checkFixture(t)
	lost := uuid.NewString()
	res := &loadgen.Result{Scenario: "lost", RunID: "0a0b0c0e", Stock: map[string]int64{"HOT-1": 5},
		Outcomes: []loadgen.Outcome{{Buyer: 0, IdempotencyKey: "k", CustomerID: "lg-0a0b0c0e-0", OrderID: lost, Lines: []loadgen.Line{{SKU: "HOT-1", Qty: 1}},
			Class: loadgen.ClassAccepted, Status: 202, Attempts: 1}}}
	path := writeResult(t, res)
	code, out := runCheck(t, env, "--outcomes", path)
	if code != orderctl.ExitError || !strings.Contains(out, "| I2 | No lost order | **NO** | 1 |") || !strings.Contains(out, "order "+lost+" was answered 202 but has no row in Postgres") ||
		!strings.Contains(out, "error: check: 1 invariant(s) broken") {
		t.Fatalf("exit %d, want 1 with I2 broken naming %s:\n%s", code, lost, out)
	}
	code, out = runCheck(t, env, "--outcomes", path, "--output", "json")
	var rep checker.Report
	if err := json.Unmarshal([]byte(strings.SplitN(out, "error: ", 2)[0]), &rep); err != nil {
		t.Fatalf("json output: %v\n%s", err, out)
	}
	if code != orderctl.ExitError || rep.OK() || rep.Invariants[1].ID != "I2" || rep.Invariants[1].Holds || rep.Invariants[1].Count != 1 {
		t.Fatalf("exit %d, report %+v: want I2 broken once", code, rep.Invariants)
	}
}

// A promotion of the scenario that Postgres does not know breaks P1 like an invariant: exit 1.
func TestCheckCommandPromotionBroken(t *testing.T) {
	t.Parallel()
	env := checkFixture(t)
	res := &loadgen.Result{Scenario: "promo", RunID: "0a0b0c0f", Stock: map[string]int64{"HOT-1": 5}, Promotions: []string{"never-created"}}
	code, out := runCheck(t, env, "--outcomes", writeResult(t, res))
	// Nothing was played either, so R0 is broken too.
	if code != orderctl.ExitError || !strings.Contains(out, "| P1 | Promotion caps and limits hold | **NO** | 1 |") ||
		!strings.Contains(out, "promotion never-created of the scenario does not exist in Postgres") || !strings.Contains(out, "error: check: 2 invariant(s) broken") {
		t.Fatalf("exit %d, want 1 with P1 broken naming never-created:\n%s", code, out)
	}
}

func TestCheckCommandBadArguments(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	garbled := filepath.Join(dir, "garbled.json")
	if err := os.WriteFile(garbled, []byte(`{"outcomes": [{"class": "maybe"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	good := writeResult(t, &loadgen.Result{Scenario: "x", RunID: "1"})
	for _, c := range []struct {
		name string
		env  map[string]string
		args []string
		code int
		want string
	}{
		{"no outcomes", nil, nil, orderctl.ExitUsage, "--outcomes is required"},
		{"missing file", nil, []string{"--outcomes", filepath.Join(dir, "none.json")}, orderctl.ExitUsage, "no such file"},
		{"bad class", nil, []string{"--outcomes", garbled}, orderctl.ExitUsage, `outcomes[0].class: want accepted, refused, error or unknown, got "maybe"`},
		{"bad output", nil, []string{"--outcomes", good, "--output", "yaml"}, orderctl.ExitUsage, `--output: want table or json, got "yaml"`},
		{"bad mail url", map[string]string{"MAIL_URL": "localhost:8025"}, []string{"--outcomes", good}, orderctl.ExitError, "MAIL_URL"},
		{"unreachable sources", map[string]string{"DATABASE_URL": "postgres://postgres@127.0.0.1:1/x?sslmode=disable&connect_timeout=2"}, []string{"--outcomes", good}, orderctl.ExitError, "127.0.0.1:1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			code, out := runCheck(t, c.env, c.args...)
			if code != c.code || !strings.Contains(out, c.want) {
				t.Errorf("exit %d, output %q; want %d and %q", code, out, c.code, c.want)
			}
		})
	}
}
