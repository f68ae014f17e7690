package postgres_test

import (
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/orderpipe/orderpipe/internal/postgres"
)

func candidate(sku string, qty int) postgres.Candidate {
	id := uuid.NewString()
	return postgres.Candidate{
		EventID: uuid.NewString(),
		Order: postgres.Order{
			ID: id, Status: "confirmed", CustomerID: "c", Email: "a@example.com", Priority: "standard", Currency: "EUR",
			SubtotalMinor: 100, TotalMinor: 100, ShippingAddress: json.RawMessage(`{}`), PlacedAt: time.Now(), HoldDeadline: time.Now().Add(time.Hour),
			Lines: []postgres.OrderLine{{LineNo: 1, SKU: sku, Name: sku, Quantity: qty, UnitPriceMinor: 100}},
		},
		Payment: postgres.Payment{ProviderID: "ch_" + id[:8], Status: postgres.PaymentCaptured, AmountMinor: 100, Currency: "EUR"},
	}
}

// Four workers apply overlapping batches against 30 units at once: exactly 30 units are
// allocated (one conditional update per SKU per batch, the guard under a row lock), the rest are
// cancelled out_of_stock with a refund pending, and an event applied twice is decided once.
func TestApplyGuardsStockUnderConcurrency(t *testing.T) {
	t.Parallel()
	b := setup(t)
	addProducts(t, b, "HOT-1", "COLD-1")
	if _, err := b.stock.SeedMissing(t.Context(), map[string]int64{"HOT-1": 30, "COLD-1": 1000}); err != nil {
		t.Fatal(err)
	}
	store := postgres.NewProcessingStore(b.pool)
	batches := make([][]postgres.Candidate, 4)
	for i := range batches {
		for range 20 {
			batches[i] = append(batches[i], candidate("HOT-1", 1), candidate("COLD-1", 2))
		}
	}
	// The same event twice: in two batches applied concurrently.
	batches[3] = append(batches[3], batches[0][0])
	var mu sync.Mutex
	decided := map[string]postgres.Decision{}
	var wg sync.WaitGroup
	for _, batch := range batches {
		wg.Go(func() {
			ds, err := store.Apply(t.Context(), "order-worker", batch, time.Now())
			if err != nil {
				t.Errorf("apply: %v", err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, d := range ds {
				if _, dup := decided[d.OrderID]; dup {
					t.Errorf("order %s decided twice", d.OrderID)
				}
				decided[d.OrderID] = d
			}
		})
	}
	wg.Wait()
	counts := map[string]int{}
	for _, d := range decided {
		counts[d.Status+"/"+d.CancelReason+"/"+d.Payment]++
	}
	if len(decided) != 160 || counts["confirmed//captured"] != 110 || counts["cancelled/out_of_stock/refund_pending"] != 50 {
		t.Fatalf("decisions %v (%d orders), want 110 confirmed (30 hot + 80 cold) and 50 hot refused", counts, len(decided))
	}
	levels, err := b.stock.All(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range levels {
		want := map[string]int64{"HOT-1": 30, "COLD-1": 160}[l.SKU]
		if l.Allocated != want {
			t.Errorf("%s allocated %d of %d, want %d", l.SKU, l.Allocated, l.OnHand, want)
		}
	}
	// Applying a decided batch again decides nothing and changes nothing.
	again, err := store.Apply(t.Context(), "order-worker", batches[1], time.Now())
	if err != nil || len(again) != 0 {
		t.Fatalf("re-apply: %d decisions, %v; want none", len(again), err)
	}
	known, err := store.Decisions(t.Context(), []string{batches[1][0].Order.ID})
	if err != nil || known[batches[1][0].Order.ID].Status == "" {
		t.Fatalf("Decisions = %v, %v", known, err)
	}
}

// A batch with a row Postgres refuses for good fails as a whole, with the SQLSTATE of the refusal
// and the candidate whose row it was (from the COPY line), whichever table the row is in; the
// undo record of a refunded payment is written once and read back.
func TestApplyNamesTheRefusedRow(t *testing.T) {
	t.Parallel()
	b := setup(t)
	addProducts(t, b, "SKU-1")
	if _, err := b.stock.SeedMissing(t.Context(), map[string]int64{"SKU-1": 1000}); err != nil {
		t.Fatal(err)
	}
	store := postgres.NewProcessingStore(b.pool)
	for _, tc := range []struct {
		name   string
		poison func(c *postgres.Candidate)
	}{
		{"NUL in customer_id (orders)", func(c *postgres.Candidate) { c.Order.CustomerID = "c-1\x00x" }},
		{"NUL in a line's name (order_lines)", func(c *postgres.Candidate) { c.Order.Lines[0].Name = "pad\x00" }},
	} {
		var batch []postgres.Candidate
		for range 9 {
			batch = append(batch, candidate("SKU-1", 1))
		}
		tc.poison(&batch[6])
		_, err := store.Apply(t.Context(), "order-worker", batch, time.Now())
		var row *postgres.RowError
		var pg *pgconn.PgError
		if !errors.As(err, &row) || row.EventID != batch[6].EventID || !errors.As(err, &pg) || pg.Code != "22021" {
			t.Errorf("%s: got %v, want a RowError naming event %s with SQLSTATE 22021", tc.name, err, batch[6].EventID)
		}
	}
	u := postgres.Undo{OrderID: uuid.NewString(), EventID: uuid.NewString(), ChargeID: "ch_1", RefundID: "re_1", AmountMinor: 100, Currency: "EUR", ErrorClass: "permanent", Error: "SQLSTATE 22021"}
	for range 2 {
		if err := store.RecordUndo(t.Context(), u); err != nil {
			t.Fatal(err)
		}
	}
	got, err := store.Undone(t.Context(), []string{u.OrderID, uuid.NewString()})
	if err != nil || len(got) != 1 || got[u.OrderID].RefundID != "re_1" {
		t.Fatalf("Undone: got %+v (%v), want the one undo of %s", got, err, u.OrderID)
	}
}

// Concurrent claims of one Idempotency-Key fingerprint, and a batch holding it twice: every
// caller learns the same owner, the earliest order id within a batch; other keys are unaffected.
func TestClaimIdempotencyHasOneOwner(t *testing.T) {
	t.Parallel()
	b := setup(t)
	store := postgres.NewProcessingStore(b.pool)
	fp := strings.Repeat("ab", 32)
	early, late := uuid.Must(uuid.NewV7()).String(), uuid.Must(uuid.NewV7()).String()
	owners := make([]string, 8)
	var wg sync.WaitGroup
	for i := range owners {
		wg.Go(func() {
			me := uuid.Must(uuid.NewV7()).String()
			got, err := store.ClaimIdempotency(t.Context(), []postgres.IdempotencyClaim{{APIKeyID: "k1", Fingerprint: fp, OrderID: me}})
			if err != nil {
				t.Error(err)
				return
			}
			owners[i] = got[postgres.IdempotencyClaim{APIKeyID: "k1", Fingerprint: fp}]
		})
	}
	wg.Wait()
	for _, o := range owners {
		if o == "" || o != owners[0] {
			t.Fatalf("owners %v, want one and the same", owners)
		}
	}
	other := strings.Repeat("cd", 32)
	got, err := store.ClaimIdempotency(t.Context(), []postgres.IdempotencyClaim{
		{APIKeyID: "k1", Fingerprint: other, OrderID: late}, {APIKeyID: "k1", Fingerprint: other, OrderID: early},
		{APIKeyID: "k2", Fingerprint: fp, OrderID: late},
	})
	if err != nil {
		t.Fatal(err)
	}
	if o := got[postgres.IdempotencyClaim{APIKeyID: "k1", Fingerprint: other}]; o != early {
		t.Errorf("owner within one batch: %s, want the earliest order %s", o, early)
	}
	if o := got[postgres.IdempotencyClaim{APIKeyID: "k2", Fingerprint: fp}]; o != late {
		t.Errorf("the same fingerprint under another API key: owner %s, want its own order %s", o, late)
	}
}
