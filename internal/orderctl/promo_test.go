package orderctl_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/orderpipe/orderpipe/internal/orderctl"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/promotion"
	"github.com/orderpipe/orderpipe/internal/redisstore"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

// orderctl promo: create (local times in --tz, stored UTC, shown with the zone), list, show,
// update, end; the prices are published to Redis at once; bad input exits 2 naming the flag.
func TestPromoCommands(t *testing.T) {
	t.Parallel()
	pool, url := testenv.Postgres(t)
	rdb, prefix := testenv.Redis(t)
	store := redisstore.New(rdb, prefix)
	if _, err := postgres.NewCatalogStore(pool).UpsertMany(t.Context(), []postgres.Product{
		{SKU: "TYR-WINTER-1001", Name: "Winter tyre", Category: "tyres", Brand: "Continental", PriceMinor: 10000, Currency: "EUR", Active: true},
		{SKU: "BRK-PAD-1001", Name: "Brake pads", Category: "brakes", Brand: "Bosch", PriceMinor: 4990, Currency: "EUR", Active: true},
	}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"DATABASE_URL": url, "REDIS_ADDRS": rdb.Options().Addr, "REDIS_KEY_PREFIX": prefix}
	run := func(args ...string) (int, string) {
		var out bytes.Buffer
		err := orderctl.Run(t.Context(), args, func(k string) string { return env[k] }, &out)
		if err != nil {
			out.WriteString(err.Error())
		}
		return orderctl.Code(err), out.String()
	}
	entry := func() (promotion.Entry, bool) {
		docs, err := store.Prices(t.Context(), "TYR-WINTER-1001")
		if err != nil {
			t.Fatal(err)
		}
		doc, ok := docs["TYR-WINTER-1001"]
		var e promotion.Entry
		if ok {
			if err := json.Unmarshal(doc, &e); err != nil {
				t.Fatal(err)
			}
		}
		return e, ok
	}

	day := time.Now().UTC().AddDate(0, 0, 1).Format("2006-01-02")
	code, out := run("promo", "create", "--id", "winter-30", "--name", "Winter -30%", "--percent", "30", "--category", "tyres",
		"--starts", day+" 08:00", "--ends", day+" 20:00", "--tz", "Europe/Berlin", "--cap", "500", "--limit", "4")
	if code != 0 || !strings.Contains(out, "winter-30") || !strings.Contains(out, day+" 08:00:00.000 +01:00 CET") || !strings.Contains(out, "scheduled") {
		t.Fatalf("create: exit %d\n%s", code, out)
	}
	start, _ := time.ParseInLocation("2006-01-02 15:04", day+" 08:00", mustZone(t, "Europe/Berlin"))
	e, ok := entry()
	if !ok || len(e.Windows) != 1 || e.Windows[0].StartMs != start.UnixMilli() || e.Windows[0].PriceMinor != 7000 ||
		e.Windows[0].StockCap != 500 || e.Windows[0].Limit != 4 {
		t.Fatalf("published timeline %+v (%v), want one window from %s at 7000", e, ok, start)
	}
	p, err := postgres.NewPromotionStore(pool).Get(t.Context(), "winter-30")
	if err != nil || !p.StartsAt.Equal(start) || p.StartsAt.Location() != time.UTC || p.TimeZone != "Europe/Berlin" {
		t.Fatalf("stored %+v (%v), want start %s in UTC", p, err, start.UTC())
	}

	// Shown in another zone on request; JSON is the API's document.
	if code, out := run("promo", "show", "winter-30", "--tz", "America/New_York"); code != 0 || !strings.Contains(out, day+" 02:00:00.000 -05:00 EST") {
		t.Fatalf("show --tz: exit %d\n%s", code, out)
	}
	if code, out := run("promo", "show", "winter-30", "--output", "json"); code != 0 || !strings.Contains(out, `"starts_at_local": "`+day+`T08:00:00.000+01:00"`) {
		t.Fatalf("show json: exit %d\n%s", code, out)
	}
	if code, out := run("promo", "update", "winter-30", "--percent", "50"); code != 0 || !strings.Contains(out, "-50%") {
		t.Fatalf("update: exit %d\n%s", code, out)
	}
	if e, _ := entry(); len(e.Windows) != 1 || e.Windows[0].PriceMinor != 5000 {
		t.Fatalf("after update: %+v, want 5000", e)
	}
	if code, out := run("promo", "list"); code != 0 || !strings.Contains(out, "winter-30") {
		t.Fatalf("list: exit %d\n%s", code, out)
	}
	if code, out := run("promo", "end", "winter-30"); code != 0 || !strings.Contains(out, "ended") {
		t.Fatalf("end: exit %d\n%s", code, out)
	}
	if _, ok := entry(); ok {
		t.Fatal("an ended promotion's timeline is still published")
	}
	if code, out := run("promo", "list"); code != 0 || strings.Contains(out, "winter-30") {
		t.Fatalf("list without --all shows the ended promotion: exit %d\n%s", code, out)
	}
	if code, out := run("promo", "list", "--all"); code != 0 || !strings.Contains(out, "winter-30") {
		t.Fatalf("list --all: exit %d\n%s", code, out)
	}

	// Bad input: exit 2 naming the flag; unknown ids exit 1.
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"promo", "create", "--name", "x", "--percent", "120", "--skus", "BRK-PAD-1001", "--starts", day + " 08:00", "--ends", day + " 09:00"}, "--percent"},
		{[]string{"promo", "create", "--name", "x", "--percent", "10", "--skus", "BRK-PAD-1001", "--starts", "tomorrow", "--ends", day + " 09:00"}, "--starts"},
		{[]string{"promo", "create", "--name", "x", "--percent", "10", "--fixed-price", "100", "--skus", "BRK-PAD-1001"}, "--fixed-price"},
		{[]string{"promo", "create", "--name", "x", "--percent", "10", "--skus", "BRK-PAD-1001", "--starts", day + " 10:00", "--ends", day + " 09:00"}, "--ends"},
		{[]string{"promo", "show", "winter-30", "--tz", "Mars/Olympus"}, "--tz"},
	} {
		if code, out := run(tt.args...); code != orderctl.ExitUsage || !strings.Contains(out, tt.want) {
			t.Errorf("%v: exit %d, want 2 naming %s\n%s", tt.args, code, tt.want, out)
		}
	}
	if code, out := run("promo", "show", "nope"); code != orderctl.ExitError || !strings.Contains(out, "no promotion") {
		t.Errorf("show unknown: exit %d\n%s", code, out)
	}
}

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}
