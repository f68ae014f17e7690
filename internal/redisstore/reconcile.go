package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Reconciliation of the counters with the stock truth in Postgres (invariant I4):
// RepairStock fixes a SKU whose counters drifted, RebuildStock recreates a SKU whose counters
// Redis lost, with the holds of the orders still in flight and the counters of its promotions.
// Both are one script in the SKU's {SKU} slot, which reads the SKU's live holds itself, so no
// hold can be taken or ended between the count and the write.

// Observed is one SKU's counters and live holds, read atomically.
type Observed struct {
	Known     bool  // the SKU has counters
	ATP, Held int64 // the counters
	HeldLive  int64 // units in the SKU's live holds: equals Held unless something corrupted them
	Holds     int   // live holds
}

// ObserveStock reads, for every SKU in skus, its counters and the sum of its live holds, each SKU
// atomically (one read-only script per SKU, in its slot), in one pipeline.
func (s *Store) ObserveStock(ctx context.Context, skus []string) (map[string]Observed, error) {
	calls := make([]scriptCall, len(skus))
	for i, sku := range skus {
		if err := checkSKU(sku); err != nil {
			return nil, err
		}
		calls[i] = scriptCall{keys: []string{s.invKey(sku), s.holdsKey(sku)}, args: []any{s.prefix + "hold:{" + sku + "}:"}}
	}
	out := make(map[string]Observed, len(skus))
	if len(calls) == 0 {
		return out, nil
	}
	sc := loadScript("reconcile_observe.lua")
	for i, cmd := range s.runPipelined(ctx, sc, calls) {
		v, err := cmd.Int64Slice()
		if err != nil {
			return nil, fmt.Errorf("observe %s: %w", skus[i], classify(err))
		}
		if len(v) != 5 {
			return nil, fmt.Errorf("observe %s: script reply has %d values, want 5", skus[i], len(v))
		}
		out[skus[i]] = Observed{Known: v[0] == 1, ATP: v[1], Held: v[2], HeldLive: v[3], Holds: int(v[4])}
	}
	return out, nil
}

// RebuildHold is a hold Redis lost: an order accepted and not yet decided.
type RebuildHold struct {
	OrderID  string
	Qty      int64
	Deadline time.Time
	// The hold's promotional units: PromoQty of the Qty units were sold under PromotionID and
	// count against Customer's allowance (0: none).
	PromotionID string
	PromoQty    int64
	Customer    string
}

// RebuildPromo is a promotion whose counters on a rebuilt SKU are recreated: its end, and per
// customer the promotional units of the orders Postgres decided and did not cancel.
type RebuildPromo struct {
	ID        string
	End       time.Time        // the promotion's end: ends_at, or ended_at when it was ended early
	Customers map[string]int64 // customer id -> decided promotional units
}

// Rebuilt is the outcome of RebuildStock.
type Rebuilt struct {
	// Done is false when the SKU already had counters: nothing was changed.
	Done       bool
	ATP        int64 // may be negative: lost holds are given back without refusing
	Held       int64
	Created    int // holds re-created
	Expired    int // holds whose deadline had passed, ended as expired instead
	Promotions int // promotions whose counters were rebuilt
}

// EndedTTL is how long the markers of ended holds are kept, and the counters of a promotion after
// its end.
func (s *Store) EndedTTL() time.Duration { return s.endedTTL }

// RebuildStock creates the counters of sku from truth (Postgres on_hand - allocated) and holds,
// in one script. marks are Postgres' last applied stock-event seq per warehouse (warehouse_stock):
// the truth includes those events, so the stock-sequence marks are raised to them and a delta
// still on its way (ApplyStockDeltas) does not count twice. The holds are re-created with their
// order id, deadline and promotional units (those past their deadline are ended as expired,
// recorded in the expiry outbox for the reaper), then held is the sum of the SKU's live holds and
// atp = truth - held. Until it runs the api refuses the SKU's orders with 503; after it ATP is
// final, so no half-built SKU is ever sold from. A SKU that has counters is left alone (Done
// false), so concurrent rebuilds are safe.
//
// In the same step the counters of promos (stock cap, per-customer limit) are recreated: each
// promotion's are its decided units (RebuildPromo.Customers) plus the promotional units of the
// SKU's live holds made under it, re-created or still there; they are kept until the promotion's
// end plus EndedTTL. Promotions whose counters would already have expired are skipped, and a
// hold under a promotion not in promos counts against nothing.
func (s *Store) RebuildStock(ctx context.Context, sku string, truth int64, marks map[string]int64, holds []RebuildHold, promos []RebuildPromo, now time.Time) (Rebuilt, error) {
	if err := checkSKU(sku); err != nil {
		return Rebuilt{}, err
	}
	keys := []string{s.invKey(sku), s.holdsKey(sku), s.outboxKey(sku), s.stockSeqKey(sku)}
	args := make([]any, 0, 6+2*len(marks)+3*len(promos)+6*len(holds))
	args = append(args, truth, s.prefix+"hold:{"+sku+"}:", s.prefix+"ended:{"+sku+"}:", s.endedTTL.Milliseconds(), now.UnixMilli(), len(marks))
	for wh, seq := range marks {
		args = append(args, wh, seq)
	}
	seen := make(map[string]bool, len(promos))
	for _, p := range promos {
		if p.ID == "" || strings.ContainsAny(p.ID, "{}") || seen[p.ID] {
			return Rebuilt{}, fmt.Errorf("rebuild %s: promotion %q: want a unique id without braces", sku, p.ID)
		}
		seen[p.ID] = true
		until := p.End.Add(s.endedTTL)
		if !until.After(now) {
			continue // its counters would have expired already
		}
		keys = append(keys, s.promoKey(sku, p.ID))
		args = append(args, p.ID, until.UnixMilli(), len(p.Customers))
		for c, n := range p.Customers {
			args = append(args, c, n)
		}
	}
	for _, h := range holds {
		if h.OrderID == "" || h.Qty <= 0 {
			return Rebuilt{}, fmt.Errorf("rebuild %s: hold %q of %d units, want an order id and a positive quantity", sku, h.OrderID, h.Qty)
		}
		if h.PromoQty < 0 || h.PromoQty > h.Qty || (h.PromoQty > 0 && h.PromotionID == "") {
			return Rebuilt{}, fmt.Errorf("rebuild %s: hold %q has %d promotional units of %d under promotion %q, want 0..qty under a named promotion",
				sku, h.OrderID, h.PromoQty, h.Qty, h.PromotionID)
		}
		promo := h.PromotionID
		if h.PromoQty == 0 {
			promo = ""
		}
		args = append(args, h.OrderID, h.Qty, h.Deadline.UnixMilli(), promo, h.PromoQty, h.Customer)
	}
	cmds := s.runPipelined(ctx, loadScript("reconcile_rebuild.lua"), []scriptCall{{keys: keys, args: args}})
	v, err := cmds[0].Int64Slice()
	if err != nil {
		return Rebuilt{}, fmt.Errorf("rebuild %s: %w", sku, classify(err))
	}
	if len(v) != 6 {
		return Rebuilt{}, fmt.Errorf("rebuild %s: script reply has %d values, want 6", sku, len(v))
	}
	return Rebuilt{Done: v[0] == 1, ATP: v[1], Held: v[2], Created: int(v[3]), Expired: int(v[4]), Promotions: int(v[5])}, nil
}

// RepairOutcome says what RepairStock did.
type RepairOutcome int

// Outcomes of RepairStock.
const (
	RepairMissing RepairOutcome = iota // the SKU has no counters: rebuild it instead
	RepairDone                         // counters set from the truth (possibly unchanged)
	RepairSkipped                      // atp + held moved since it was observed: an update is in flight
)

// Repaired is the outcome of RepairStock.
type Repaired struct {
	Outcome               RepairOutcome
	ATPBefore, HeldBefore int64
	ATP, Held             int64
}

// RepairStock sets the counters of sku from truth (Postgres on_hand - allocated): held := the
// sum of the SKU's live holds (recounted in the script), atp := truth - held. It never races an
// update in flight: with expectSum set it acts only while atp + held still equals *expectSum
// (what the caller observed), and only when no stock-sequence mark is below marks (Postgres' last
// applied stock-event seq per warehouse: a lower mark is a delta still on its way); otherwise it
// reports RepairSkipped.
func (s *Store) RepairStock(ctx context.Context, sku string, truth int64, expectSum *int64, marks map[string]int64) (Repaired, error) {
	if err := checkSKU(sku); err != nil {
		return Repaired{}, err
	}
	expect := ""
	if expectSum != nil {
		expect = strconv.FormatInt(*expectSum, 10)
	}
	args := []any{truth, expect, s.prefix + "hold:{" + sku + "}:"}
	for wh, seq := range marks {
		args = append(args, wh, seq)
	}
	cmds := s.runPipelined(ctx, loadScript("reconcile_repair.lua"), []scriptCall{{
		keys: []string{s.invKey(sku), s.holdsKey(sku), s.stockSeqKey(sku)},
		args: args,
	}})
	v, err := cmds[0].Int64Slice()
	if err != nil {
		return Repaired{}, fmt.Errorf("repair %s: %w", sku, classify(err))
	}
	if len(v) != 5 {
		return Repaired{}, fmt.Errorf("repair %s: script reply has %d values, want 5", sku, len(v))
	}
	out := Repaired{ATPBefore: v[1], HeldBefore: v[2], ATP: v[3], Held: v[4]}
	switch v[0] {
	case 0:
		out.Outcome = RepairMissing
	case 1:
		out.Outcome = RepairDone
	default:
		out.Outcome = RepairSkipped
	}
	return out, nil
}

// Holds returns the live holds of sku (order id, quantity, deadline, promotional units), for
// reports and tests.
func (s *Store) Holds(ctx context.Context, sku string) ([]RebuildHold, error) {
	if err := checkSKU(sku); err != nil {
		return nil, err
	}
	members, err := s.rdb.ZRangeWithScores(ctx, s.holdsKey(sku), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("holds of %s: %w", sku, classify(err))
	}
	cmds := make([]*redis.SliceCmd, len(members))
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, m := range members {
			cmds[i] = p.HMGet(ctx, s.holdKey(sku, m.Member.(string)), "qty", "promo", "pqty", "cust")
		}
		return nil
	})
	out := make([]RebuildHold, 0, len(members))
	for i, m := range members {
		vals, err := cmds[i].Result()
		if err != nil {
			return nil, fmt.Errorf("hold %s of %s: %w", m.Member, sku, classify(err))
		}
		field := func(j int) string { v, _ := vals[j].(string); return v }
		if vals[0] == nil {
			continue // ended meanwhile
		}
		h := RebuildHold{OrderID: m.Member.(string), Deadline: time.UnixMilli(int64(m.Score)).UTC(),
			PromotionID: field(1), Customer: field(3)}
		if h.Qty, err = strconv.ParseInt(field(0), 10, 64); err != nil {
			return nil, fmt.Errorf("hold %s of %s: qty: %w", m.Member, sku, err)
		}
		if p := field(2); p != "" {
			if h.PromoQty, err = strconv.ParseInt(p, 10, 64); err != nil {
				return nil, fmt.Errorf("hold %s of %s: pqty: %w", m.Member, sku, err)
			}
		}
		out = append(out, h)
	}
	return out, nil
}
