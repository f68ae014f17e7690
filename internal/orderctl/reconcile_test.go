package orderctl_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/orderpipe/orderpipe/internal/orderctl"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/redisstore"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

// orderctl reconcile reports drift with exit code 3, repairs it with --repair (exit 0, before and
// after in the table), and prints the whole result as JSON.
func TestReconcileCommand(t *testing.T) {
	t.Parallel()
	pool, dbURL := testenv.Postgres(t)
	rdb, prefix := testenv.Redis(t)
	cluster := testenv.Kafka(t)
	ctx := t.Context()
	if _, err := postgres.NewCatalogStore(pool).UpsertMany(ctx, []postgres.Product{
		{SKU: "BRK-PAD-1001", Name: "Brake pads", Category: "brakes", Brand: "Brembo", PriceMinor: 4990, Currency: "EUR", Active: true},
		{SKU: "FLT-OIL-2001", Name: "Oil filter", Category: "filters", Brand: "Mann", PriceMinor: 899, Currency: "EUR", Active: true},
	}); err != nil {
		t.Fatal(err)
	}
	stock := map[string]int64{"BRK-PAD-1001": 10, "FLT-OIL-2001": 4}
	if _, err := postgres.NewStockStore(pool).SeedMissing(ctx, stock); err != nil {
		t.Fatal(err)
	}
	store := redisstore.New(rdb, prefix)
	if _, err := store.SeedStock(ctx, stock); err != nil {
		t.Fatal(err)
	}
	if err := store.SetStock(ctx, "BRK-PAD-1001", 13); err != nil { // 3 units too many
		t.Fatal(err)
	}
	env := map[string]string{"DATABASE_URL": dbURL, "REDIS_ADDRS": rdb.Options().Addr, "REDIS_KEY_PREFIX": prefix,
		"KAFKA_BROKERS": strings.Join(cluster.ListenAddrs(), ",")}
	run := func(args ...string) (int, string) {
		var out bytes.Buffer
		err := orderctl.Run(ctx, args, func(k string) string { return env[k] }, &out)
		return orderctl.Code(err), out.String()
	}

	code, out := run("reconcile")
	if code != orderctl.ExitDiff || !strings.Contains(out, "BRK-PAD-1001") || !strings.Contains(out, "+3") || strings.Contains(out, "FLT-OIL-2001") {
		t.Fatalf("check: exit %d\n%s\nwant exit 3 listing BRK-PAD-1001 with drift +3 only", code, out)
	}
	code, out = run("reconcile", "--repair", "--settle", "10ms")
	if code != orderctl.ExitOK || !strings.Contains(out, "repaired BRK-PAD-1001: atp 13 -> 10") || !strings.Contains(out, "after: 2 SKUs compared, 0 differ") {
		t.Fatalf("repair: exit %d\n%s", code, out)
	}
	code, out = run("reconcile", "--output", "json")
	var res struct {
		Before struct {
			SKUs int `json:"skus"`
			Off  []any
		} `json:"before"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != orderctl.ExitOK || res.Before.SKUs != 2 || len(res.Before.Off) != 0 {
		t.Fatalf("json after the repair: exit %d %v\n%s", code, err, out)
	}
	if code, _ := run("reconcile", "--output", "yaml"); code != orderctl.ExitUsage {
		t.Fatalf("--output yaml: exit %d, want 2", code)
	}
}
