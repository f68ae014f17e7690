package inventorysync_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/orderpipe/orderpipe/internal/config"
	"github.com/orderpipe/orderpipe/internal/inventorysync"
)

func readme(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// block returns the shell lines between <!-- name:begin --> and <!-- name:end -->, without the
// code fence.
func block(t *testing.T, doc, name string) string {
	t.Helper()
	_, after, ok := strings.Cut(doc, "<!-- "+name+":begin -->")
	if !ok {
		t.Fatalf("README has no %s block", name)
	}
	body, _, ok := strings.Cut(after, "<!-- "+name+":end -->")
	if !ok {
		t.Fatalf("README's %s block has no end", name)
	}
	body = strings.TrimSpace(body)
	body = strings.TrimPrefix(body, "```sh")
	return strings.TrimSuffix(body, "```")
}

// Docs move with code: every variable inventory-sync reads has a row with its default in README.
func TestReadmeDocumentsEveryVariable(t *testing.T) {
	t.Parallel()
	problems, err := config.Undocumented(readme(t), &inventorysync.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("README configuration: %s", p)
	}
}

// The README's kcat lines, run as written (sh, the real kcat), are applied by inventory-sync:
// a snapshot, a delivery and a shipment that completes an order. Running them again changes
// nothing (the same seqs are stale).
func TestReadmeKcatExamplesAreApplied(t *testing.T) {
	t.Parallel()
	s := setup(t, []string{"BRK-PAD-1001"}, map[string]int64{"BRK-PAD-1001": 10})
	order := s.confirm(t, "BRK-PAD-1001", 1)
	s.sync(t, nil)
	script := block(t, readme(t), "kcat")
	run := func() {
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "sh", "-ec", script)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "KAFKA_BROKERS=" + s.broker, "ORDER_ID=" + order}
		if out, err := cmd.CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
			t.Fatalf("README kcat lines: %v\n%s", err, out)
		}
		s.waitSettled(t, "inventory-sync", 30*time.Second)
	}
	run()
	want := stockRow{OnHand: 120 + 48 - 1, Allocated: 0}
	if got := s.stock(t, "BRK-PAD-1001"); got != want {
		t.Fatalf("stock: got %+v, want %+v", got, want)
	}
	if st := s.orderStatus(t, order); st != "shipped" {
		t.Fatalf("order: got %s, want shipped", st)
	}
	run()
	if got := s.stock(t, "BRK-PAD-1001"); got != want {
		t.Fatalf("stock after running the lines again: got %+v, want %+v", got, want)
	}
	st, err := s.redis.Availability(t.Context(), "BRK-PAD-1001")
	if err != nil || st.ATP != want.OnHand || st.Held != 0 {
		t.Fatalf("Redis: got %+v, %v; want atp %d", st, err, want.OnHand)
	}
}
