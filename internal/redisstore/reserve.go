package redisstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Line is one order line to reserve (or confirm).
type Line struct {
	SKU   string
	Qty   int64
	Promo *LinePromo // the promotion pricing the SKU at the order's acceptance; nil: base price
}

// LinePromo is the promotion of a line: its limits for Reserve, its granted units for Confirm.
type LinePromo struct {
	ID       string
	StockCap int64     // promotional units per SKU; 0: no cap
	Limit    int64     // promotional units per customer and SKU; 0: no limit
	Refuse   bool      // units beyond the cap or the allowance refuse the order (else: base price)
	Customer string    // whose allowance counts
	Until    time.Time // the promotion's end: its counters are kept until then plus the ended-marker TTL
	Units    int64     // Confirm only: the line's promotional units
}

// PromoLimit is a line refused because fewer of its units than asked could be promotional
// (stock cap reached or the customer's allowance used up) under a promotion that refuses
// over-cap units.
type PromoLimit struct {
	SKU         string
	PromotionID string
	Requested   int64
	Promotional int64 // units that could still have been promotional
}

// Shortage is a line that could not be reserved for lack of stock.
type Shortage struct {
	SKU       string
	Requested int64
	Available int64 // ATP when the line was tried
}

// Reservation is the outcome of Reserve. When OK is false the order holds
// nothing: every hold it had was released.
type Reservation struct {
	OK bool
	// Short lists every short line, in line order.
	Short []Shortage
	// NotStocked lists SKUs that have no counters in Redis (never loaded, or
	// Redis lost its data). The caller answers 503: never sell blind.
	NotStocked []string
	// PromoLimited lists lines refused by their promotion's limits (over-cap rule refuse).
	PromoLimited []PromoLimit
	// Promotional is, per SKU reserved under a promotion, how many of its units are
	// promotional (the rest are sold at the base price). Set when OK.
	Promotional map[string]int64
}

// HoldResult is the outcome of ending one hold.
type HoldResult struct {
	Late  bool // Confirm only: the hold had expired and the units were taken back out of ATP
	SKU   string
	Qty   int64 // units of the hold; 0 when not found
	Found bool  // false: there was no hold, nothing changed
}

// reserve.lua result codes.
const (
	reserveOK          = 0
	reserveAlreadyHeld = 1
	reserveNotStocked  = 2
	reserveShort       = 3
	reservePromoLimit  = 4
)

// Reserve holds the units of every line for orderID until deadline. Each SKU
// is reserved by its own script (one hash slot each), all sent in one
// pipeline, so every line is tried and every short line is reported.
//
// Reserve is idempotent by order id: a line the order already holds is not
// taken twice, and neither is a line whose hold was confirmed (its ended
// marker says so). Both answer "already held", with the promotional units of
// that hold when the line is reserved under the same promotion, so a retry
// answers as the first attempt did. Lines with the same SKU are merged into one
// hold.
//
// The confirmed case matters because an earlier attempt of the same order may
// have answered 202 without its answer being stored under the Idempotency-Key
// (Redis failed after the broker acknowledged OrderPlaced, or the api died
// there): the client's retry then runs again with the same order id, maybe
// after order-worker confirmed the order and ended its holds. Taking the units
// again would count them sold twice (the worker deduplicates the second
// OrderPlaced and confirms the new hold) until reconciliation repaired ATP.
// After a hold was released (the attempt was refused, or answered 503) or
// expired, the retry holds again: the units went back to ATP, and a later
// confirmation ends the new hold.
//
// If any line is short or not stocked, the order is refused and Reserve
// releases every hold of the order on these SKUs before returning, including
// holds left by an earlier attempt of the same order: the whole order is being
// refused, and a refused order holds nothing (I5). An earlier attempt is not
// necessarily a failed one (see above), but a line it still holds or whose
// hold was confirmed answers "already held" and is never short, so a retry of
// an accepted order is refused only when one of its holds had expired (or
// Redis lost them: not stocked) and the stock is gone meanwhile. Releasing its
// other holds then gives back units the worker may still allocate through the
// Postgres guard; its confirmation finds no hold, and reconciliation repairs
// ATP.
//
// A Redis failure returns an error matching ErrUnavailable, after a
// best-effort release of every line that may have been reserved. What cannot
// be released then (Redis gone) is healed by the hold deadlines.
func (s *Store) Reserve(ctx context.Context, orderID string, lines []Line, deadline time.Time) (Reservation, error) {
	merged, err := mergeLines(orderID, lines)
	if err != nil {
		return Reservation{}, err
	}
	dl := deadline.UnixMilli()
	calls := make([]scriptCall, len(merged))
	for i, l := range merged {
		calls[i] = scriptCall{
			keys: []string{s.invKey(l.SKU), s.holdKey(l.SKU, orderID), s.holdsKey(l.SKU), s.endedKey(l.SKU, orderID)},
			args: []any{orderID, l.Qty, dl},
		}
		if pr := l.Promo; pr != nil {
			over := "base"
			if pr.Refuse {
				over = "refuse"
			}
			calls[i].keys = append(calls[i].keys, s.promoKey(l.SKU, pr.ID))
			calls[i].args = append(calls[i].args, pr.ID, pr.StockCap, pr.Limit, over, pr.Customer,
				pr.Until.Add(s.endedTTL).UnixMilli())
		}
	}
	cmds := s.runPipelined(ctx, s.reserve, calls)

	res := Reservation{OK: true}
	var mayHold []string // lines that hold, or may hold, units of this order
	var failure error
	for i, cmd := range cmds {
		l := merged[i]
		code, n, promo, err := triple(cmd)
		if err != nil {
			mayHold = append(mayHold, l.SKU)
			if failure == nil {
				failure = fmt.Errorf("reserve %s: %w", l.SKU, classify(err))
			}
			continue
		}
		switch code {
		case reserveOK, reserveAlreadyHeld:
			mayHold = append(mayHold, l.SKU)
			if l.Promo != nil && promo > 0 {
				if res.Promotional == nil {
					res.Promotional = make(map[string]int64, len(merged))
				}
				res.Promotional[l.SKU] = promo
			}
		case reservePromoLimit:
			res.OK = false
			res.PromoLimited = append(res.PromoLimited, PromoLimit{SKU: l.SKU, PromotionID: l.Promo.ID, Requested: l.Qty, Promotional: n})
		case reserveNotStocked:
			res.OK = false
			res.NotStocked = append(res.NotStocked, l.SKU)
		case reserveShort:
			res.OK = false
			res.Short = append(res.Short, Shortage{SKU: l.SKU, Requested: l.Qty, Available: n})
		default:
			mayHold = append(mayHold, l.SKU)
			if failure == nil {
				failure = fmt.Errorf("reserve %s: unexpected script result %d", l.SKU, code)
			}
		}
	}
	if failure == nil && res.OK {
		return res, nil
	}
	res.Promotional = nil

	// Refused or failed: give back what this order holds, on a context the
	// caller cannot cancel, so an impatient caller leaves no hold behind.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), compensateTimeout)
	defer cancel()
	_, relErr := s.Release(cctx, orderID, mayHold)
	switch {
	case failure != nil && relErr != nil:
		return Reservation{}, fmt.Errorf("reserve order %s: compensation left holds to their deadline (%v): %w", orderID, relErr, failure)
	case failure != nil:
		return Reservation{}, fmt.Errorf("reserve order %s: %w", orderID, failure)
	case relErr != nil:
		return Reservation{}, fmt.Errorf("reserve order %s: release refused order: %w", orderID, relErr)
	}
	return res, nil
}

// Release ends the holds of orderID on skus and returns their units to ATP
// (payment declined, order refused or cancelled). Idempotent: a missing hold
// is a no-op reported with Found false. Results follow the order of skus.
func (s *Store) Release(ctx context.Context, orderID string, skus []string) ([]HoldResult, error) {
	lines := make([]Line, len(skus))
	for i, sku := range skus {
		lines[i] = Line{SKU: sku}
	}
	res, err := s.endHolds(ctx, s.release, orderID, lines, func(l Line) []any {
		return []any{orderID, s.endedTTL.Milliseconds(), s.promoPrefix(l.SKU)}
	})
	if err != nil {
		return nil, fmt.Errorf("release order %s: %w", orderID, err)
	}
	s.announceReleased(ctx, res)
	return res, nil
}

// Confirm ends the holds of orderID because their units are now allocated in
// Postgres: held goes down, ATP stays. A hold that had expired (its units went
// back to ATP) is confirmed late: the line's quantity is taken out of ATP again
// (Late true), because Postgres allocated it. Each hold ends once: a repeated
// Confirm is a no-op reported with Found false. Results follow the order of the SKUs' first lines.
//
// Lines of the same SKU (an order line split into promotional and base-price units, or a
// request that named a SKU twice) are merged first: the hold is one per order and SKU. A late
// confirmation also counts the line's promotional units again against the promotion (the
// expiry had given them back).
//
// The ended marker of a confirmed hold records its promotional units and promotion (from the
// live hold, or from the line's Promo for a late confirmation), so that Reserve answers a retry
// of the confirmed order as its first attempt, without taking anything again.
func (s *Store) Confirm(ctx context.Context, orderID string, lines []Line) ([]HoldResult, error) {
	merged := make([]Line, 0, len(lines))
	index := make(map[string]int, len(lines))
	for _, l := range lines {
		if i, ok := index[l.SKU]; ok {
			merged[i].Qty += l.Qty
			if l.Promo != nil {
				if merged[i].Promo == nil {
					p := *l.Promo
					merged[i].Promo = &p
				} else {
					merged[i].Promo.Units += l.Promo.Units
				}
			}
			continue
		}
		index[l.SKU] = len(merged)
		if l.Promo != nil {
			p := *l.Promo
			l.Promo = &p
		}
		merged = append(merged, l)
	}
	res, err := s.endHolds(ctx, s.confirm, orderID, merged, func(l Line) []any {
		if l.Promo != nil && l.Promo.Units > 0 {
			return []any{orderID, l.Qty, s.endedTTL.Milliseconds(), l.Promo.Units, l.Promo.Customer, l.Promo.ID}
		}
		return []any{orderID, l.Qty, s.endedTTL.Milliseconds()}
	})
	if err != nil {
		return nil, fmt.Errorf("confirm order %s: %w", orderID, err)
	}
	return res, nil
}

// endHolds runs the release or confirm script for every line in one pipeline.
// On error, the results of the lines that did succeed are lost to the caller,
// which retries: both scripts are idempotent.
func (s *Store) endHolds(ctx context.Context, sc *redis.Script, orderID string, lines []Line, args func(Line) []any) ([]HoldResult, error) {
	if orderID == "" {
		return nil, errors.New("empty order id")
	}
	if len(lines) == 0 {
		return nil, nil
	}
	calls := make([]scriptCall, len(lines))
	for i, l := range lines {
		if err := checkSKU(l.SKU); err != nil {
			return nil, err
		}
		calls[i] = scriptCall{
			keys: []string{s.invKey(l.SKU), s.holdKey(l.SKU, orderID), s.holdsKey(l.SKU), s.endedKey(l.SKU, orderID)},
			args: args(l),
		}
		if sc == s.confirm && l.Promo != nil && l.Promo.Units > 0 {
			calls[i].keys = append(calls[i].keys, s.promoKey(l.SKU, l.Promo.ID))
		}
	}
	cmds := s.runPipelined(ctx, sc, calls)
	out := make([]HoldResult, len(lines))
	for i, cmd := range cmds {
		code, qty, err := pair(cmd)
		if err != nil {
			return nil, fmt.Errorf("end hold %s: %w", lines[i].SKU, classify(err))
		}
		out[i] = HoldResult{SKU: lines[i].SKU, Qty: qty, Found: code != 0, Late: code == 2}
	}
	return out, nil
}

// triple reads a {int, int, int} script reply (reserve.lua).
func triple(cmd *redis.Cmd) (int64, int64, int64, error) {
	v, err := cmd.Int64Slice()
	if err != nil {
		return 0, 0, 0, err
	}
	if len(v) != 3 {
		return 0, 0, 0, fmt.Errorf("script reply has %d values, want 3", len(v))
	}
	return v[0], v[1], v[2], nil
}

// pair reads a {int, int} script reply.
func pair(cmd *redis.Cmd) (int64, int64, error) {
	v, err := cmd.Int64Slice()
	if err != nil {
		return 0, 0, err
	}
	if len(v) != 2 {
		return 0, 0, fmt.Errorf("script reply has %d values, want 2", len(v))
	}
	return v[0], v[1], nil
}

// mergeLines validates lines and merges lines of the same SKU, keeping the
// order of first appearance.
func mergeLines(orderID string, lines []Line) ([]Line, error) {
	if orderID == "" {
		return nil, errors.New("reserve: empty order id")
	}
	if len(lines) == 0 {
		return nil, fmt.Errorf("reserve order %s: no lines", orderID)
	}
	merged := make([]Line, 0, len(lines))
	index := make(map[string]int, len(lines))
	for _, l := range lines {
		if err := checkSKU(l.SKU); err != nil {
			return nil, fmt.Errorf("reserve order %s: %w", orderID, err)
		}
		if l.Qty <= 0 {
			return nil, fmt.Errorf("reserve order %s: sku %s: quantity %d, want > 0", orderID, l.SKU, l.Qty)
		}
		if i, ok := index[l.SKU]; ok {
			merged[i].Qty += l.Qty
			continue
		}
		index[l.SKU] = len(merged)
		merged = append(merged, l)
	}
	return merged, nil
}
