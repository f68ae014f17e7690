package postgres

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Outcome statuses of a payment row.
const (
	PaymentCaptured      = "captured"
	PaymentDeclined      = "declined"
	PaymentRefundPending = "refund_pending"
	PaymentRefunded      = "refunded"
	PaymentFailed        = "failed" // the provider refused the request itself (invalid)
)

// Payment is the provider's answer for an order.
type Payment struct {
	ProviderID  string
	Status      string
	DeclineCode string
	AmountMinor int64
	Currency    string
}

// Candidate is an order order-worker has charged (or failed to) and wants decided in Postgres.
type Candidate struct {
	EventID string
	Order   Order   // Status "confirmed" to allocate, or "cancelled" with CancelReason
	Payment Payment // zero ProviderID allowed for a declined or failed payment; zero Status: no payment row
	Expired bool    // the hold deadline had passed: a refused allocation cancels as "expired"
}

// Decision is where an order ended up.
type Decision struct {
	OrderID      string
	Status       string // confirmed or cancelled
	CancelReason string
	PaymentID    string
	Payment      string // payment status
	DecidedAt    time.Time
	New          bool // decided by this call (false: an earlier delivery decided it)
}

// ProcessingStore writes order-worker's effects: one transaction per batch.
type ProcessingStore struct {
	pool *pgxpool.Pool
}

// NewProcessingStore returns a ProcessingStore over pool.
func NewProcessingStore(pool *pgxpool.Pool) *ProcessingStore { return &ProcessingStore{pool: pool} }

// Processed returns which of eventIDs group has already processed.
func (s *ProcessingStore) Processed(ctx context.Context, group string, eventIDs []string) (map[string]bool, error) {
	rows, err := s.pool.Query(ctx, `SELECT event_id::text FROM processed_events WHERE consumer_group = $1 AND event_id = ANY($2::uuid[])`, group, eventIDs)
	if err != nil {
		return nil, fmt.Errorf("processed events of %s: %w", group, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("processed events of %s: %w", group, err)
	}
	out := make(map[string]bool, len(ids))
	for _, id := range ids {
		out[id] = true
	}
	return out, nil
}

// Apply decides a batch of candidates in one transaction:
//
//  1. it claims each event id for group (a concurrent worker's claim wins; its order is skipped);
//  2. it locks the stock rows of every SKU involved, in SKU order (no deadlocks between workers);
//  3. it allocates candidates in the given order while on_hand allows (the I1 guard), cancelling
//     the others as out_of_stock (or expired) with their payment marked refund_pending;
//  4. it raises stock.allocated once per SKU (one conditional update for the whole batch, backed
//     by the stock_no_oversell constraint) and writes orders, lines, payments and allocations.
//
// It returns one decision per candidate it decided; candidates another delivery already decided
// are absent (load them with Decisions).
func (s *ProcessingStore) Apply(ctx context.Context, group string, cands []Candidate, now time.Time) ([]Decision, error) {
	if len(cands) == 0 {
		return nil, nil
	}
	for _, c := range cands {
		if _, err := uuid.Parse(c.Order.ID); err != nil {
			return nil, fmt.Errorf("apply batch: order id %q: %w", c.Order.ID, err)
		}
		if _, err := uuid.Parse(c.EventID); err != nil {
			return nil, fmt.Errorf("apply batch: event id %q: %w", c.EventID, err)
		}
	}
	var out []Decision
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		out = out[:0]
		ids := make([]string, len(cands))
		for i, c := range cands {
			ids[i] = c.EventID
		}
		rows, err := tx.Query(ctx, `
INSERT INTO processed_events (consumer_group, event_id)
SELECT $1, e FROM unnest($2::uuid[]) AS e
ON CONFLICT DO NOTHING
RETURNING event_id::text`, group, ids)
		if err != nil {
			return fmt.Errorf("claim events: %w", err)
		}
		claimedIDs, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("claim events: %w", err)
		}
		claimed := make(map[string]bool, len(claimedIDs))
		for _, id := range claimedIDs {
			claimed[id] = true
		}

		// Lock the stock of every SKU that a capturable order needs.
		need := map[string]bool{}
		for _, c := range cands {
			if claimed[c.EventID] && c.Order.Status == "confirmed" {
				for _, l := range c.Order.Lines {
					need[l.SKU] = true
				}
			}
		}
		skus := make([]string, 0, len(need))
		for sku := range need {
			skus = append(skus, sku)
		}
		slices.Sort(skus)
		free := make(map[string]int64, len(skus))
		if len(skus) > 0 {
			rows, err := tx.Query(ctx, `SELECT sku, on_hand - allocated FROM stock WHERE sku = ANY($1) ORDER BY sku FOR UPDATE`, skus)
			if err != nil {
				return fmt.Errorf("lock stock: %w", err)
			}
			for rows.Next() {
				var sku string
				var n int64
				if err := rows.Scan(&sku, &n); err != nil {
					rows.Close()
					return fmt.Errorf("lock stock: %w", err)
				}
				free[sku] = n
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return fmt.Errorf("lock stock: %w", err)
			}
		}

		// Decide in order; aggregate the allocation per SKU.
		alloc := map[string]int64{}
		var orders, lines, payments, allocs [][]any
		// The candidate (event id) of each row, so a refused row names its candidate.
		var orderOwners, lineOwners, paymentOwners, allocOwners []string
		for _, c := range cands {
			if !claimed[c.EventID] {
				continue
			}
			o, p := c.Order, c.Payment
			if o.Status == "confirmed" {
				// Lines of the same SKU (a line split into promotional and base-price units)
				// are one allocation.
				need := map[string]int64{}
				var skuOrder []string
				for _, l := range o.Lines {
					if _, ok := need[l.SKU]; !ok {
						skuOrder = append(skuOrder, l.SKU)
					}
					need[l.SKU] += int64(l.Quantity)
				}
				fits := true
				for _, sku := range skuOrder {
					if free[sku]-alloc[sku] < need[sku] {
						fits = false
						break
					}
				}
				if fits {
					for _, sku := range skuOrder {
						alloc[sku] += need[sku]
						allocs = append(allocs, []any{mustUUID(o.ID), sku, need[sku]})
						allocOwners = append(allocOwners, c.EventID)
					}
				} else {
					o.Status, o.CancelReason = "cancelled", "out_of_stock"
					if c.Expired {
						o.CancelReason = "expired"
					}
					p.Status = PaymentRefundPending
				}
			}
			orders = append(orders, []any{mustUUID(o.ID), o.Status, nullIfEmpty(o.CancelReason), o.CustomerID, o.Email, o.Priority,
				o.Currency, o.SubtotalMinor, o.ShippingMinor, o.TotalMinor, []byte(o.ShippingAddress), o.PlacedAt, o.HoldDeadline, now, now})
			orderOwners = append(orderOwners, c.EventID)
			for _, l := range o.Lines {
				lines = append(lines, []any{mustUUID(o.ID), int32(l.LineNo), l.SKU, l.Name, int32(l.Quantity), l.UnitPriceMinor, nullIfEmpty(l.PromotionID)})
				lineOwners = append(lineOwners, c.EventID)
			}
			if p.Status != "" { // no payment at all (a duplicate is never charged)
				payments = append(payments, []any{mustUUID(o.ID), nullIfEmpty(p.ProviderID), p.Status, nullIfEmpty(p.DeclineCode), p.AmountMinor, p.Currency})
				paymentOwners = append(paymentOwners, c.EventID)
			}
			out = append(out, Decision{OrderID: o.ID, Status: o.Status, CancelReason: o.CancelReason, PaymentID: p.ProviderID, Payment: p.Status, DecidedAt: now, New: true})
		}

		if len(alloc) > 0 {
			aSKUs := make([]string, 0, len(alloc))
			aQty := make([]int64, 0, len(alloc))
			for _, sku := range skus {
				if n := alloc[sku]; n > 0 {
					aSKUs, aQty = append(aSKUs, sku), append(aQty, n)
				}
			}
			tag, err := tx.Exec(ctx, `
UPDATE stock SET allocated = stock.allocated + d.n, updated_at = now()
FROM unnest($1::text[], $2::bigint[]) AS d(sku, n)
WHERE stock.sku = d.sku AND stock.allocated + d.n <= stock.on_hand`, aSKUs, aQty)
			if err != nil {
				return fmt.Errorf("allocate: %w", err)
			}
			if tag.RowsAffected() != int64(len(aSKUs)) {
				return fmt.Errorf("allocate: guard refused %d of %d SKUs under lock", int64(len(aSKUs))-tag.RowsAffected(), len(aSKUs))
			}
		}
		copies := []struct {
			table  string
			cols   []string
			rows   [][]any
			owners []string
		}{
			{"orders", []string{"id", "status", "cancel_reason", "customer_id", "email", "priority", "currency", "subtotal_minor", "shipping_minor", "total_minor", "shipping_address", "placed_at", "hold_deadline", "updated_at", "decided_at"}, orders, orderOwners},
			{"order_lines", []string{"order_id", "line_no", "sku", "name", "quantity", "unit_price_minor", "promotion_id"}, lines, lineOwners},
			{"payments", []string{"order_id", "provider_id", "status", "decline_code", "amount_minor", "currency"}, payments, paymentOwners},
			{"allocations", []string{"order_id", "sku", "quantity"}, allocs, allocOwners},
		}
		for _, c := range copies {
			if len(c.rows) == 0 {
				continue
			}
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{c.table}, c.cols, pgx.CopyFromRows(c.rows)); err != nil {
				err = fmt.Errorf("write %s: %w", c.table, err)
				if owner, ok := copyRowOwner(err, c.table, c.owners); ok {
					return &RowError{EventID: owner, Err: err}
				}
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("apply batch of %d for %s: %w", len(cands), group, err)
	}
	return out, nil
}

// RowError is a failure of a batch that Postgres attributed to the row of one candidate: COPY
// names the line it refused (SQLSTATE 22021 for a NUL in text, for example). It is a hint for
// isolating the candidate at fault, not a verdict: a caller confirms it by applying that
// candidate alone.
type RowError struct {
	EventID string // the candidate whose row was refused
	Err     error
}

func (e *RowError) Error() string { return fmt.Sprintf("event %s: %v", e.EventID, e.Err) }
func (e *RowError) Unwrap() error { return e.Err }

// copyLine matches the error context of a row COPY refused: "COPY orders, line 251, column ...".
var copyLine = regexp.MustCompile(`^COPY ([a-z_]+), line ([0-9]+)`)

// copyRowOwner returns the owner of the row of table that err (from a COPY into table) names.
func copyRowOwner(err error, table string, owners []string) (string, bool) {
	var pg *pgconn.PgError
	if !errors.As(err, &pg) {
		return "", false
	}
	m := copyLine.FindStringSubmatch(pg.Where)
	if m == nil || m[1] != table {
		return "", false
	}
	n, convErr := strconv.Atoi(m[2])
	if convErr != nil || n < 1 || n > len(owners) {
		return "", false
	}
	return owners[n-1], true
}

// Decisions loads the decisions of orders already written (for redelivered events: their
// follow-up steps are repeated idempotently).
func (s *ProcessingStore) Decisions(ctx context.Context, orderIDs []string) (map[string]Decision, error) {
	rows, err := s.pool.Query(ctx, `
SELECT o.id::text, o.status, coalesce(o.cancel_reason, ''), coalesce(p.provider_id, ''), coalesce(p.status, ''),
       coalesce(o.decided_at, o.updated_at)
FROM orders o LEFT JOIN payments p ON p.order_id = o.id
WHERE o.id = ANY($1::uuid[])`, orderIDs)
	if err != nil {
		return nil, fmt.Errorf("load decisions: %w", err)
	}
	defer rows.Close()
	out := map[string]Decision{}
	for rows.Next() {
		var d Decision
		if err := rows.Scan(&d.OrderID, &d.Status, &d.CancelReason, &d.PaymentID, &d.Payment, &d.DecidedAt); err != nil {
			return nil, fmt.Errorf("load decisions: %w", err)
		}
		out[d.OrderID] = d
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load decisions: %w", err)
	}
	return out, nil
}

// MarkRefunded records a completed refund of an order whose allocation the guard refused.
func (s *ProcessingStore) MarkRefunded(ctx context.Context, orderID, refundID string) error {
	if _, err := s.pool.Exec(ctx, `UPDATE payments SET status = 'refunded', refund_id = $2, updated_at = now() WHERE order_id = $1 AND status = 'refund_pending'`, orderID, refundID); err != nil {
		return fmt.Errorf("mark refunded %s: %w", orderID, err)
	}
	return nil
}

// DeadLetter is an order whose OrderPlaced record went to the dead-letter topic.
type DeadLetter struct {
	OrderID         string
	EventID         string
	SourceTopic     string
	SourcePartition int32
	SourceOffset    int64
	ErrorClass      string
	Error           string
	At              time.Time
}

// RecordDeadLetter remembers that an order's record was dead-lettered (the latest time wins).
func (s *ProcessingStore) RecordDeadLetter(ctx context.Context, d DeadLetter) error {
	_, err := s.pool.Exec(ctx, `
INSERT INTO order_dead_letters (order_id, event_id, source_topic, source_partition, source_offset, error_class, error)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (order_id) DO UPDATE SET event_id = EXCLUDED.event_id, source_topic = EXCLUDED.source_topic,
  source_partition = EXCLUDED.source_partition, source_offset = EXCLUDED.source_offset,
  error_class = EXCLUDED.error_class, error = EXCLUDED.error, dead_lettered_at = now()`,
		d.OrderID, d.EventID, d.SourceTopic, d.SourcePartition, d.SourceOffset, d.ErrorClass, d.Error)
	if err != nil {
		return fmt.Errorf("record dead letter %s: %w", d.OrderID, err)
	}
	return nil
}

// DeadLetterOf returns the dead-letter record of an order that has not been decided since.
func (s *ProcessingStore) DeadLetterOf(ctx context.Context, orderID string) (DeadLetter, bool, error) {
	uid, err := uuid.Parse(orderID)
	if err != nil {
		return DeadLetter{}, false, nil
	}
	var d DeadLetter
	err = s.pool.QueryRow(ctx, `
SELECT order_id::text, event_id, source_topic, source_partition, source_offset, error_class, error, dead_lettered_at
FROM order_dead_letters d WHERE order_id = $1 AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.id = d.order_id)`, uid).
		Scan(&d.OrderID, &d.EventID, &d.SourceTopic, &d.SourcePartition, &d.SourceOffset, &d.ErrorClass, &d.Error, &d.At)
	if errors.Is(err, pgx.ErrNoRows) {
		return DeadLetter{}, false, nil
	}
	if err != nil {
		return DeadLetter{}, false, fmt.Errorf("dead letter of %s: %w", orderID, err)
	}
	return d, true, nil
}

// CountDeadLettered counts orders dead-lettered and not decided since (a gauge for ops).
func (s *ProcessingStore) CountDeadLettered(ctx context.Context) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM order_dead_letters d WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.id = d.order_id)`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count dead-lettered orders: %w", err)
	}
	return n, nil
}

func mustUUID(s string) uuid.UUID {
	u, err := uuid.Parse(s)
	if err != nil {
		// Apply parsed every id before its transaction; reaching this is a programming error.
		panic(fmt.Sprintf("postgres: order id %q is not a UUID: %v", s, err))
	}
	return u
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// Undo is a captured payment refunded because its order could not be stored.
type Undo struct {
	OrderID     string
	EventID     string
	ChargeID    string
	RefundID    string
	AmountMinor int64
	Currency    string
	ErrorClass  string
	Error       string // why the order could not be stored
	At          time.Time
}

// RecordUndo records a refund made because the order could not be stored; the first record of
// an order wins (a repeated undo refunds nothing new: the provider answers with the first refund).
func (s *ProcessingStore) RecordUndo(ctx context.Context, u Undo) error {
	_, err := s.pool.Exec(ctx, `
INSERT INTO payment_undos (order_id, event_id, charge_id, refund_id, amount_minor, currency, error_class, error)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (order_id) DO NOTHING`,
		u.OrderID, u.EventID, u.ChargeID, u.RefundID, u.AmountMinor, u.Currency, u.ErrorClass, u.Error)
	if err != nil {
		return fmt.Errorf("record undo of %s: %w", u.OrderID, err)
	}
	return nil
}

// Undone returns the undo records of those of orderIDs whose payment was refunded because the
// order could not be stored.
func (s *ProcessingStore) Undone(ctx context.Context, orderIDs []string) (map[string]Undo, error) {
	rows, err := s.pool.Query(ctx, `
SELECT order_id::text, event_id::text, charge_id, refund_id, amount_minor, currency, error_class, error, undone_at
FROM payment_undos WHERE order_id = ANY($1::uuid[])`, orderIDs)
	if err != nil {
		return nil, fmt.Errorf("load undos: %w", err)
	}
	undos, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Undo, error) {
		var u Undo
		err := r.Scan(&u.OrderID, &u.EventID, &u.ChargeID, &u.RefundID, &u.AmountMinor, &u.Currency, &u.ErrorClass, &u.Error, &u.At)
		return u, err
	})
	if err != nil {
		return nil, fmt.Errorf("load undos: %w", err)
	}
	out := make(map[string]Undo, len(undos))
	for _, u := range undos {
		out[u.OrderID] = u
	}
	return out, nil
}

// IdempotencyClaim is an order's claim of its Idempotency-Key fingerprint.
type IdempotencyClaim struct {
	APIKeyID    string
	Fingerprint string
	OrderID     string
}

// ClaimIdempotency claims each fingerprint for its order, durably (committed when it returns),
// and returns the owner of every claimed (API key id, fingerprint): the order that claimed it
// first, this call's order when none had. Within one call the earliest order id (UUIDv7: the
// earliest accepted) wins. A concurrent claim of the same fingerprint is waited for, and its
// order returned if it committed first.
func (s *ProcessingStore) ClaimIdempotency(ctx context.Context, claims []IdempotencyClaim) (map[IdempotencyClaim]string, error) {
	if len(claims) == 0 {
		return nil, nil
	}
	keys, fps, orders := make([]string, len(claims)), make([]string, len(claims)), make([]string, len(claims))
	for i, c := range claims {
		keys[i], fps[i], orders[i] = c.APIKeyID, c.Fingerprint, c.OrderID
	}
	// Two statements: the second one's snapshot sees a concurrent claim the first one waited for.
	b := &pgx.Batch{}
	b.Queue(`
INSERT INTO idempotency_claims (api_key_id, fingerprint, order_id)
SELECT k, f, o FROM unnest($1::text[], $2::text[], $3::uuid[]) AS c(k, f, o) ORDER BY o
ON CONFLICT DO NOTHING`, keys, fps, orders)
	b.Queue(`
SELECT api_key_id, fingerprint, order_id::text FROM idempotency_claims
WHERE (api_key_id, fingerprint) IN (SELECT * FROM unnest($1::text[], $2::text[]))`, keys, fps)
	out := make(map[IdempotencyClaim]string, len(claims))
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		br := tx.SendBatch(ctx, b)
		defer br.Close()
		if _, err := br.Exec(); err != nil {
			return err
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		for rows.Next() {
			var c IdempotencyClaim
			var owner string
			if err := rows.Scan(&c.APIKeyID, &c.Fingerprint, &owner); err != nil {
				rows.Close()
				return err
			}
			out[c] = owner
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		return br.Close()
	})
	if err != nil {
		return nil, fmt.Errorf("claim %d idempotency keys: %w", len(claims), err)
	}
	return out, nil
}
