package workerbench_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/orderpipe/orderpipe/internal/workerbench"
)

// A small run of all three arms: it must process every record, the replay must insert nothing,
// and the report must carry the numbers. (The real measurement is `make bench`.)
func TestSmallRun(t *testing.T) {
	t.Parallel()
	dbURL := os.Getenv("TEST_DATABASE_URL")
	if dbURL == "" {
		dbURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	rep, err := workerbench.Run(t.Context(), workerbench.Config{
		DatabaseURL: dbURL, RedisAddr: "127.0.0.1:6379", Orders: 400, BatchSize: 100, PerMessage: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Batch.Orders != 400 || rep.Batch.Rows.Orders != 400 || rep.Batch.Rows.Processed != 400 {
		t.Fatalf("batch arm processed %d orders, rows %+v; want 400", rep.Batch.Orders, rep.Batch.Rows)
	}
	if !rep.ReplayInsertedNothing || rep.Replay.Rows != rep.Batch.Rows {
		t.Fatalf("replay changed rows: %+v -> %+v", rep.Batch.Rows, rep.Replay.Rows)
	}
	if rep.PerMessage.Orders == 0 || rep.PerMessage.Rows.Orders != int64(rep.PerMessage.Orders) {
		t.Fatalf("per-message arm: %+v", rep.PerMessage)
	}
	if pa := rep.Poison; len(pa.Clean) != pa.Rounds || len(pa.Poison) != pa.Rounds || !pa.Undone {
		t.Fatalf("poison comparison: %+v; want every round of both arms, the poison undone in each", pa)
	}
	md := rep.Markdown("go test")
	for _, want := range []string{"batch design / one transaction per message", "replay inserts nothing", "| batch |", "one poison record in the middle"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
}
