package orderctl_test

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderpipe/orderpipe/internal/orderctl"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/redisstore"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

// catalogStack is a migrated Postgres schema and a Redis prefix holding a catalog of two
// products: BRK-PAD-1001 (its price will change; it has 25 units of stock) and FLT-OIL-2001
// (identical to the import files; no stock yet).
type catalogStack struct {
	pool  *pgxpool.Pool
	store *redisstore.Store
	env   map[string]string
}

func newCatalogStack(t *testing.T) *catalogStack {
	t.Helper()
	pool, url := testenv.Postgres(t)
	rdb, prefix := testenv.Redis(t)
	ctx := t.Context()
	if _, err := postgres.NewCatalogStore(pool).UpsertMany(ctx, []postgres.Product{
		{SKU: "BRK-PAD-1001", Name: "Brake pads front", Category: "brakes", Brand: "Bosch", PriceMinor: 4990, Currency: "EUR", Active: true},
		{SKU: "FLT-OIL-2001", Name: "Oil filter", Category: "filters", Brand: "Mann", PriceMinor: 1290, Currency: "EUR", Active: true},
	}); err != nil {
		t.Fatal(err)
	}
	if err := postgres.NewStockStore(pool).Set(ctx, "BRK-PAD-1001", 25); err != nil {
		t.Fatal(err)
	}
	return &catalogStack{pool: pool, store: redisstore.New(rdb, prefix),
		env: map[string]string{"DATABASE_URL": url, "REDIS_ADDRS": rdb.Options().Addr, "REDIS_KEY_PREFIX": prefix}}
}

func (s *catalogStack) run(t *testing.T, args ...string) (int, string, error) {
	t.Helper()
	var out bytes.Buffer
	err := orderctl.Run(t.Context(), args, func(k string) string { return s.env[k] }, &out)
	return orderctl.Code(err), out.String(), err
}

// state is the catalog and stock as lines "sku name category brand price currency active | on_hand".
func (s *catalogStack) state(t *testing.T) string {
	t.Helper()
	rows, err := s.pool.Query(t.Context(), `
SELECT p.sku || ' ' || p.name || ' ' || p.category || ' ' || p.brand || ' ' || p.price_minor || ' ' || p.currency || ' ' || p.active
       || ' | ' || coalesce(s.on_hand::text, '-')
FROM products p LEFT JOIN stock s USING (sku) ORDER BY p.sku`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var l string
		if err := rows.Scan(&l); err != nil {
			t.Fatal(err)
		}
		b.WriteString(l + "\n")
	}
	return b.String()
}

const importedState = "BAT-5001 Battery 70Ah batteries Varta 12990 EUR false | 7\n" +
	"BRK-PAD-1001 Brake pads front brakes Bosch 5290 EUR true | 25\n" +
	"BRK-PAD-1002 Brake pads rear brakes Bosch 3990 EUR true | -\n" +
	"FLT-OIL-2001 Oil filter filters Mann 1290 EUR true | 100\n"

// A dry run prints what the import would insert, update and leave alone (golden), and changes
// nothing; --execute applies it in one transaction, gives SKUs without stock their initial stock
// in Postgres and Redis and leaves existing stock alone; importing again changes nothing.
func TestCatalogImportCSV(t *testing.T) {
	t.Parallel()
	s := newCatalogStack(t)
	before := s.state(t)
	code, out, err := s.run(t, "catalog", "import", "testdata/catalog_import.csv")
	if code != orderctl.ExitOK {
		t.Fatalf("dry run: exit %d (%v)\n%s", code, err, out)
	}
	golden(t, "catalog_import_dry.golden", out)
	if got := s.state(t); got != before {
		t.Fatalf("after a dry run:\n%s\nwant unchanged\n%s", got, before)
	}

	code, out, err = s.run(t, "catalog", "import", "testdata/catalog_import.csv", "--execute")
	if code != orderctl.ExitOK {
		t.Fatalf("execute: exit %d (%v)\n%s", code, err, out)
	}
	golden(t, "catalog_import_execute.golden", out)
	if got := s.state(t); got != importedState {
		t.Fatalf("after the import:\n%s\nwant\n%s", got, importedState)
	}
	avail, err := s.store.Availabilities(t.Context(), []string{"BAT-5001", "FLT-OIL-2001", "BRK-PAD-1002"})
	if err != nil {
		t.Fatal(err)
	}
	if a := avail["BAT-5001"]; !a.Known || a.ATP != 7 {
		t.Fatalf("redis BAT-5001: %+v, want its initial stock 7", a)
	}
	if a := avail["FLT-OIL-2001"]; !a.Known || a.ATP != 100 {
		t.Fatalf("redis FLT-OIL-2001: %+v, want its initial stock 100", a)
	}
	if a := avail["BRK-PAD-1002"]; a.Known {
		t.Fatalf("redis BRK-PAD-1002: %+v, want nothing (no stock given)", a)
	}

	code, out, err = s.run(t, "catalog", "import", "testdata/catalog_import.csv", "--execute", "--output", "json")
	if code != orderctl.ExitOK {
		t.Fatalf("again: exit %d (%v)\n%s", code, err, out)
	}
	var rep orderctl.CatalogImportReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("decode %q: %v", out, err)
	}
	if !rep.Executed || rep.Products != 4 || len(rep.Inserted) != 0 || len(rep.Updated) != 0 || rep.Unchanged != 4 ||
		len(rep.StockSeeded) != 0 || !slices.Equal(rep.StockKept, []string{"BAT-5001", "BRK-PAD-1001", "FLT-OIL-2001"}) {
		t.Fatalf("importing again: got %+v, want 4 unchanged and every stock kept", rep)
	}
	if got := s.state(t); got != importedState {
		t.Fatalf("after importing again:\n%s\nwant\n%s", got, importedState)
	}
}

// The JSON format imports the same products as the CSV file; its report lists the changes.
func TestCatalogImportJSON(t *testing.T) {
	t.Parallel()
	s := newCatalogStack(t)
	code, out, err := s.run(t, "catalog", "import", "testdata/catalog_import.json", "--execute", "--output", "json")
	if code != orderctl.ExitOK {
		t.Fatalf("exit %d (%v)\n%s", code, err, out)
	}
	var rep orderctl.CatalogImportReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("decode %q: %v", out, err)
	}
	if rep.Format != "json" || !slices.Equal(rep.Inserted, []string{"BAT-5001", "BRK-PAD-1002"}) || rep.Unchanged != 1 ||
		len(rep.Updated) != 1 || rep.Updated[0].SKU != "BRK-PAD-1001" || !slices.Equal(rep.Updated[0].Changes, []string{"price_minor: 4990 -> 5290"}) ||
		!slices.Equal(rep.StockSeeded, []string{"BAT-5001", "FLT-OIL-2001"}) || !slices.Equal(rep.StockKept, []string{"BRK-PAD-1001"}) || rep.RedisSeeded != 2 {
		t.Fatalf("got %+v, want 2 inserted, BRK-PAD-1001's price updated, 1 unchanged, stock for BAT-5001 and FLT-OIL-2001", rep)
	}
	if got := s.state(t); got != importedState {
		t.Fatalf("after the import:\n%s\nwant\n%s", got, importedState)
	}
}

// An invalid file is refused whole with exit code 2: every bad row is named with file:line and
// field (golden), and nothing is imported, not even the valid rows.
func TestCatalogImportInvalid(t *testing.T) {
	t.Parallel()
	s := newCatalogStack(t)
	before := s.state(t)
	for _, tc := range []struct{ file, golden string }{
		{"testdata/catalog_invalid.csv", "catalog_invalid_csv.golden"},
		{"testdata/catalog_invalid.json", "catalog_invalid_json.golden"},
	} {
		code, out, err := s.run(t, "catalog", "import", tc.file, "--execute")
		if code != orderctl.ExitUsage || err == nil || !strings.Contains(err.Error(), "nothing imported") {
			t.Fatalf("%s: exit %d (%v), want 2 saying nothing was imported\n%s", tc.file, code, err, out)
		}
		golden(t, tc.golden, out)
		if got := s.state(t); got != before {
			t.Fatalf("%s: after a refused import:\n%s\nwant unchanged\n%s", tc.file, got, before)
		}
	}
}

// Bad arguments of catalog import exit 2, saying what is wrong.
func TestCatalogImportBadUsage(t *testing.T) {
	t.Parallel()
	badUsage(t, []usageCase{
		{[]string{"catalog", "import"}, "want exactly one FILE argument, got 0"},
		{[]string{"catalog", "import", "a.csv", "b.csv"}, "want exactly one FILE argument, got 2"},
		{[]string{"catalog", "import", "testdata/products.xlsx"}, `cannot tell the format from the extension ".xlsx"`},
		{[]string{"catalog", "import", "testdata/catalog_import.csv", "--format", "xml"}, "--format: want csv or json"},
		{[]string{"catalog", "import", "testdata/missing.csv"}, "read testdata/missing.csv"},
		{[]string{"catalog", "import", "testdata/catalog_import.csv", "--output", "yaml"}, "--output: want table or json"},
		{[]string{"catalog", "import", "testdata/catalog_import.csv", "--dry"}, "unknown flag: --dry"},
		{[]string{"catalog", "export"}, `unknown command "export"`},
	})
}
