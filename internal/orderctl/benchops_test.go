package orderctl_test

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/orderpipe/orderpipe/internal/orderctl"
)

// `orderctl bench ops` runs end to end on a small scale and writes its section between its
// markers, keeping the rest of the file. (Its numbers are measured, not asserted.)
func TestBenchOpsWritesItsSection(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "benchmarks.md")
	if err := os.WriteFile(out, []byte("# Benchmarks\n\nkept\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"DATABASE_URL": testDatabaseURL()}
	var log bytes.Buffer
	err := orderctl.Run(t.Context(), []string{"bench", "ops", "--orders", "200", "--stock-events", "200", "--dead-letters", "100", "--out", out},
		func(k string) string { return env[k] }, &log)
	if err != nil {
		t.Fatalf("bench ops: %v\n%s", err, log.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, want := range []string{"# Benchmarks\n\nkept\n", "<!-- ops:begin -->", "<!-- ops:end -->",
		"| first pass order-worker | 200 |", "| replay order-worker | 200 |", "| first pass inventory-sync | 200 |",
		"| dlq redrive --execute (records published) | 100 |", "| order-worker on the re-driven records | 100 |",
		"the replays added no row", "after the re-drive every order is confirmed once: 300 orders, 300 captures"} {
		if !strings.Contains(doc, want) {
			t.Fatalf("want %q in\n%s", want, doc)
		}
	}
	for _, g := range []string{"notifier", "reports", "inventory-sync", "order-worker"} {
		if !regexp.MustCompile(`\| replay ` + g + ` \| \d+ \| [^|]+ \| \*\*\d+\*\* \| [\d.]+x \(first pass ` + g).MatchString(doc) {
			t.Fatalf("no replay row for %s against its first pass in\n%s", g, doc)
		}
	}
	if code := orderctl.Code(orderctl.Run(t.Context(), []string{"bench", "ops", "--orders", "5"}, func(string) string { return "" }, &log)); code != orderctl.ExitUsage {
		t.Fatalf("--orders 5: exit %d, want 2", code)
	}
}
