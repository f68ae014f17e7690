package redisstore_test

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderpipe/orderpipe/internal/redisstore"
)

type line = redisstore.Line

func TestReserveHotSKUNeverOversells(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.seed(t, map[string]int64{"BRAKE-1": 100})

	const buyers = 500
	var ok, short atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, buyers)
	for i := range buyers {
		wg.Go(func() {
			res, err := b.store.Reserve(t.Context(), "o"+strconv.Itoa(i),
				[]line{{SKU: "BRAKE-1", Qty: 1}}, time.Now().Add(time.Minute))
			switch {
			case err != nil:
				errs <- err
			case res.OK:
				ok.Add(1)
			case len(res.Short) == 1 && res.Short[0].Available == 0:
				short.Add(1)
			default:
				errs <- fmt.Errorf("order o%d: unexpected refusal %+v", i, res)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Reserve: %v", err)
	}
	if got := ok.Load(); got != 100 {
		t.Fatalf("accepted orders: got %d, want 100", got)
	}
	if got := short.Load(); got != buyers-100 {
		t.Fatalf("short orders: got %d, want %d", got, buyers-100)
	}
	b.wantStock(t, "BRAKE-1", 0, 100)
	b.wantHolds(t, "BRAKE-1", 100)
}

func TestReserveRecordsHoldWithDeadline(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.seed(t, map[string]int64{"BAT-70": 5})
	deadline := time.Now().Add(10 * time.Minute)

	res, err := b.store.Reserve(t.Context(), "o1", []line{{SKU: "BAT-70", Qty: 2}}, deadline)
	if err != nil {
		t.Fatalf("Reserve: %v", err)
	}
	if !res.OK {
		t.Fatalf("Reserve: got %+v, want OK", res)
	}
	b.wantStock(t, "BAT-70", 3, 2)
	hold, err := b.client.HGetAll(t.Context(), b.prefix+"hold:{BAT-70}:o1").Result()
	if err != nil {
		t.Fatalf("HGETALL hold: %v", err)
	}
	wantHold := map[string]string{"qty": "2", "deadline": strconv.FormatInt(deadline.UnixMilli(), 10)}
	if !reflect.DeepEqual(hold, wantHold) {
		t.Fatalf("hold: got %v, want %v", hold, wantHold)
	}
	score, err := b.client.ZScore(t.Context(), b.prefix+"holds:{BAT-70}", "o1").Result()
	if err != nil {
		t.Fatalf("ZSCORE holds: %v", err)
	}
	if int64(score) != deadline.UnixMilli() {
		t.Fatalf("hold deadline score: got %d, want %d", int64(score), deadline.UnixMilli())
	}
}

func TestReserveRefusedOrderHoldsNothing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// earlier lines reserved by an earlier attempt of the same order
		earlier        []line
		lines          []line
		wantShort      []redisstore.Shortage
		wantNotStocked []string
	}{
		{
			name:      "one short line of three",
			lines:     []line{{SKU: "A", Qty: 2}, {SKU: "B", Qty: 3}, {SKU: "C", Qty: 1}},
			wantShort: []redisstore.Shortage{{SKU: "B", Requested: 3, Available: 1}},
		},
		{
			name:  "every short line reported",
			lines: []line{{SKU: "A", Qty: 11}, {SKU: "B", Qty: 3}, {SKU: "C", Qty: 1}},
			wantShort: []redisstore.Shortage{
				{SKU: "A", Requested: 11, Available: 10},
				{SKU: "B", Requested: 3, Available: 1},
			},
		},
		{
			name:           "not stocked line",
			lines:          []line{{SKU: "A", Qty: 2}, {SKU: "NEVER-LOADED", Qty: 1}},
			wantNotStocked: []string{"NEVER-LOADED"},
		},
		{
			name:      "holds of an earlier attempt are released too",
			earlier:   []line{{SKU: "A", Qty: 2}, {SKU: "C", Qty: 1}},
			lines:     []line{{SKU: "A", Qty: 2}, {SKU: "B", Qty: 3}, {SKU: "C", Qty: 1}},
			wantShort: []redisstore.Shortage{{SKU: "B", Requested: 3, Available: 1}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.seed(t, map[string]int64{"A": 10, "B": 1, "C": 5})
			if tt.earlier != nil {
				if res := reserve(t, b.store, "o1", tt.earlier...); !res.OK {
					t.Fatalf("earlier attempt: got %+v, want OK", res)
				}
			}

			res := reserve(t, b.store, "o1", tt.lines...)

			if res.OK {
				t.Fatalf("OK: got true, want false")
			}
			if !reflect.DeepEqual(res.Short, tt.wantShort) {
				t.Fatalf("Short: got %+v, want %+v", res.Short, tt.wantShort)
			}
			if !reflect.DeepEqual(res.NotStocked, tt.wantNotStocked) {
				t.Fatalf("NotStocked: got %v, want %v", res.NotStocked, tt.wantNotStocked)
			}
			for sku, atp := range map[string]int64{"A": 10, "B": 1, "C": 5} {
				b.wantStock(t, sku, atp, 0)
				b.wantHolds(t, sku, 0)
			}
		})
	}
}

func TestReserveIsIdempotentByOrderID(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.seed(t, map[string]int64{"FILTER-9": 10})

	for attempt := range 2 {
		if res := reserve(t, b.store, "o1", line{SKU: "FILTER-9", Qty: 4}); !res.OK {
			t.Fatalf("attempt %d: got %+v, want OK", attempt, res)
		}
	}
	b.wantStock(t, "FILTER-9", 6, 4)
	b.wantHolds(t, "FILTER-9", 1)
}

func TestReserveMergesLinesOfOneSKU(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.seed(t, map[string]int64{"TYRE-16": 8})

	res := reserve(t, b.store, "o1", line{SKU: "TYRE-16", Qty: 4}, line{SKU: "TYRE-16", Qty: 5})
	want := redisstore.Reservation{Short: []redisstore.Shortage{{SKU: "TYRE-16", Requested: 9, Available: 8}}}
	if !reflect.DeepEqual(res, want) {
		t.Fatalf("got %+v, want %+v", res, want)
	}
	if res := reserve(t, b.store, "o2", line{SKU: "TYRE-16", Qty: 4}, line{SKU: "TYRE-16", Qty: 4}); !res.OK {
		t.Fatalf("got %+v, want OK", res)
	}
	b.wantStock(t, "TYRE-16", 0, 8)
	b.wantHolds(t, "TYRE-16", 1)
}

func TestReserveRejectsInvalidInput(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.seed(t, map[string]int64{"A": 10})
	tests := []struct {
		name    string
		orderID string
		lines   []line
	}{
		{"empty order id", "", []line{{SKU: "A", Qty: 1}}},
		{"no lines", "o1", nil},
		{"zero quantity", "o1", []line{{SKU: "A", Qty: 1}, {SKU: "A", Qty: 0}}},
		{"negative quantity", "o1", []line{{SKU: "A", Qty: -1}}},
		{"empty sku", "o1", []line{{SKU: "A", Qty: 1}, {SKU: "", Qty: 1}}},
		{"brace in sku", "o1", []line{{SKU: "A", Qty: 1}, {SKU: "x}y", Qty: 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := b.store.Reserve(t.Context(), tt.orderID, tt.lines, time.Now().Add(time.Minute))
			if err == nil {
				t.Fatalf("Reserve: got nil error, want one")
			}
			if errors.Is(err, redisstore.ErrUnavailable) {
				t.Fatalf("Reserve: got %v, want an error that is not ErrUnavailable", err)
			}
			b.wantStock(t, "A", 10, 0)
		})
	}
}

func TestReleaseReturnsUnitsOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.seed(t, map[string]int64{"A": 10, "B": 4})
	if res := reserve(t, b.store, "o1", line{SKU: "A", Qty: 3}, line{SKU: "B", Qty: 4}); !res.OK {
		t.Fatalf("Reserve: got %+v, want OK", res)
	}

	tests := []struct {
		name string
		want []redisstore.HoldResult
	}{
		{"first release ends the holds", []redisstore.HoldResult{{SKU: "A", Qty: 3, Found: true}, {SKU: "B", Qty: 4, Found: true}}},
		{"second release is a no-op", []redisstore.HoldResult{{SKU: "A"}, {SKU: "B"}}},
	}
	for _, tt := range tests {
		got, err := b.store.Release(t.Context(), "o1", []string{"A", "B"})
		if err != nil {
			t.Fatalf("%s: Release: %v", tt.name, err)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Fatalf("%s: got %+v, want %+v", tt.name, got, tt.want)
		}
		b.wantStock(t, "A", 10, 0)
		b.wantStock(t, "B", 4, 0)
		b.wantHolds(t, "A", 0)
		b.wantHolds(t, "B", 0)
	}
}

func TestConfirmEndsHoldOnce(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		before   func(t *testing.T, b bundle)
		want     redisstore.HoldResult
		atp      int64
		heldLeft int64
	}{
		{
			name:   "confirm allocates the units",
			before: func(*testing.T, bundle) {},
			want:   redisstore.HoldResult{SKU: "A", Qty: 3, Found: true},
			atp:    7,
		},
		{
			name: "confirm after release is a no-op",
			before: func(t *testing.T, b bundle) {
				if _, err := b.store.Release(t.Context(), "o1", []string{"A"}); err != nil {
					t.Fatalf("Release: %v", err)
				}
			},
			want: redisstore.HoldResult{SKU: "A"},
			atp:  10,
		},
		{
			name: "confirm after confirm is a no-op",
			before: func(t *testing.T, b bundle) {
				if _, err := b.store.Confirm(t.Context(), "o1", []redisstore.Line{{SKU: "A", Qty: 3}}); err != nil {
					t.Fatalf("Confirm: %v", err)
				}
			},
			want: redisstore.HoldResult{SKU: "A"},
			atp:  7,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.seed(t, map[string]int64{"A": 10})
			if res := reserve(t, b.store, "o1", line{SKU: "A", Qty: 3}); !res.OK {
				t.Fatalf("Reserve: got %+v, want OK", res)
			}
			tt.before(t, b)

			got, err := b.store.Confirm(t.Context(), "o1", []redisstore.Line{{SKU: "A", Qty: 3}})
			if err != nil {
				t.Fatalf("Confirm: %v", err)
			}
			if want := []redisstore.HoldResult{tt.want}; !reflect.DeepEqual(got, want) {
				t.Fatalf("Confirm: got %+v, want %+v", got, want)
			}
			b.wantStock(t, "A", tt.atp, 0)
			b.wantHolds(t, "A", 0)

			// A hold ends exactly once: releasing now returns nothing.
			rel, err := b.store.Release(t.Context(), "o1", []string{"A"})
			if err != nil {
				t.Fatalf("Release: %v", err)
			}
			if want := []redisstore.HoldResult{{SKU: "A"}}; !reflect.DeepEqual(rel, want) {
				t.Fatalf("Release after end: got %+v, want %+v", rel, want)
			}
			b.wantStock(t, "A", tt.atp, 0)
		})
	}
}

func TestScriptsRunWhenNotCached(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tag := make([]byte, 8)
	_, _ = rand.Read(tag)
	// A script Redis has never seen: EVALSHA answers NOSCRIPT, the runner
	// must fall back to EVAL for every call of the pipeline.
	sc := redis.NewScript("return ARGV[1] -- " + hex.EncodeToString(tag))
	keys := [][]string{{b.prefix + "x:{1}"}, {b.prefix + "x:{2}"}, {b.prefix + "x:{3}"}}
	args := [][]any{{"a"}, {"b"}, {"c"}}

	cmds := redisstore.RunPipelined(t.Context(), b.store, sc, keys, args)

	for i, cmd := range cmds {
		got, err := cmd.Text()
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if want := args[i][0].(string); got != want {
			t.Fatalf("call %d: got %q, want %q", i, got, want)
		}
	}
	exists, err := b.client.ScriptExists(t.Context(), sc.Hash()).Result()
	if err != nil {
		t.Fatalf("SCRIPT EXISTS: %v", err)
	}
	if !exists[0] {
		t.Fatalf("script cached after EVAL fallback: got false, want true")
	}
}

func TestRedisUnreachableIsUnavailable(t *testing.T) {
	t.Parallel()
	s := unreachable(t)
	tests := []struct {
		name string
		call func(t *testing.T) error
	}{
		{"Reserve", func(t *testing.T) error {
			_, err := s.Reserve(t.Context(), "o1", []line{{SKU: "A", Qty: 1}, {SKU: "B", Qty: 1}}, time.Now().Add(time.Minute))
			return err
		}},
		{"Release", func(t *testing.T) error { _, err := s.Release(t.Context(), "o1", []string{"A"}); return err }},
		{"Confirm", func(t *testing.T) error {
			_, err := s.Confirm(t.Context(), "o1", []redisstore.Line{{SKU: "A", Qty: 1}})
			return err
		}},
		{"Availability", func(t *testing.T) error { _, err := s.Availability(t.Context(), "A"); return err }},
		{"Availabilities", func(t *testing.T) error { _, err := s.Availabilities(t.Context(), []string{"A"}); return err }},
		{"SeedStock", func(t *testing.T) error { _, err := s.SeedStock(t.Context(), map[string]int64{"A": 1}); return err }},
		{"SetStock", func(t *testing.T) error { return s.SetStock(t.Context(), "A", 1) }},
		{"BeginIdempotent", func(t *testing.T) error {
			_, err := s.BeginIdempotent(t.Context(), "orders", "k", "h", "id", time.Second, time.Hour, time.Now())
			return err
		}},
		{"FinishIdempotent", func(t *testing.T) error {
			return s.FinishIdempotent(t.Context(), "orders", "k", 202, "application/json", nil)
		}},
		{"AbortIdempotent", func(t *testing.T) error { return s.AbortIdempotent(t.Context(), "orders", "k") }},
		{"FinishIdempotent", func(t *testing.T) error {
			return s.FinishIdempotent(t.Context(), "k", "i", 202, "application/json", []byte("{}"), redisstore.Snapshot{OrderID: "o1", Doc: []byte("{}"), TTL: time.Minute})
		}},
		{"PendingOrder", func(t *testing.T) error { _, _, err := s.PendingOrder(t.Context(), "o1"); return err }},
		{"Allow", func(t *testing.T) error { _, err := s.Allow(t.Context(), "k", 1, 1); return err }},
		{"Ping", func(t *testing.T) error { return s.Ping(t.Context()) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := tt.call(t); !errors.Is(err, redisstore.ErrUnavailable) {
				t.Fatalf("got %v, want ErrUnavailable", err)
			}
		})
	}
}

func TestClosedClientIsUnavailable(t *testing.T) {
	t.Parallel()
	client, prefix := setupClosed(t)
	s := redisstore.New(client, prefix)
	_, err := s.Reserve(t.Context(), "o1", []line{{SKU: "A", Qty: 1}}, time.Now().Add(time.Minute))
	if !errors.Is(err, redisstore.ErrUnavailable) {
		t.Fatalf("got %v, want ErrUnavailable", err)
	}
}

func setupClosed(t *testing.T) (*redis.Client, string) {
	t.Helper()
	b := setup(t)
	closed := redis.NewClient(b.client.Options())
	if err := closed.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	return closed, b.prefix
}

func BenchmarkReserveConfirmHotSKU(b *testing.B) {
	bb := setup(b)
	bb.seed(b, map[string]int64{"HOT": 1 << 40})
	var seq atomic.Int64
	deadline := time.Now().Add(time.Hour)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := "o" + strconv.FormatInt(seq.Add(1), 10)
			res, err := bb.store.Reserve(b.Context(), id, []line{{SKU: "HOT", Qty: 1}}, deadline)
			if err != nil || !res.OK {
				b.Errorf("Reserve %s: %+v, %v", id, res, err)
				return
			}
			if _, err := bb.store.Confirm(b.Context(), id, []redisstore.Line{{SKU: "HOT", Qty: 1}}); err != nil {
				b.Errorf("Confirm %s: %v", id, err)
				return
			}
		}
	})
	b.StopTimer()
	bb.wantStock(b, "HOT", 1<<40-seq.Load(), 0)
}
