package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Expiry is an expired hold waiting in its SKU's expiry outbox until the reaper has published
// its hold.expired event.
type Expiry struct {
	SKU       string
	OrderID   string
	Qty       int64
	Deadline  time.Time // the hold's deadline
	ExpiredAt time.Time // when the script ended the hold
}

// SKUExpiry is what ExpireDueMany did to one SKU.
type SKUExpiry struct {
	SKU     string
	Expired []ExpiredHold // holds expired by this call
	Err     error         // this SKU's script failed; the others are unaffected
}

func (s *Store) outboxKey(sku string) string { return s.prefix + "expired:{" + sku + "}" }

// ExpireDueMany is ExpireDue for many SKUs in one pipeline (one script call per SKU, each in its
// own {SKU} slot, so it runs on Redis Cluster), and it also records every expired hold in the
// SKU's expiry outbox (p+"expired:{SKU}", a hash order id -> qty, deadline, expiry time) in the
// same script. The outbox survives a crash of the caller; PendingExpiries reads it and
// AckExpiries empties it once the expiry events are published.
func (s *Store) ExpireDueMany(ctx context.Context, skus []string, now time.Time, limit int) ([]SKUExpiry, error) {
	if limit < 1 {
		return nil, fmt.Errorf("expire: limit %d, want at least 1", limit)
	}
	calls := make([]scriptCall, len(skus))
	for i, sku := range skus {
		if err := checkSKU(sku); err != nil {
			return nil, fmt.Errorf("expire: %w", err)
		}
		calls[i] = scriptCall{
			keys: []string{s.invKey(sku), s.holdsKey(sku), s.outboxKey(sku)},
			args: []any{now.UnixMilli(), limit, s.prefix + "hold:{" + sku + "}:", s.prefix + "ended:{" + sku + "}:", s.endedTTL.Milliseconds(), s.promoPrefix(sku)},
		}
	}
	if len(calls) == 0 {
		return nil, nil
	}
	cmds := s.runPipelined(ctx, s.expire, calls)
	out := make([]SKUExpiry, len(skus))
	for i, cmd := range cmds {
		out[i].SKU = skus[i]
		vals, err := cmd.Slice()
		if err != nil {
			out[i].Err = fmt.Errorf("expire holds of %s: %w", skus[i], classify(err))
			continue
		}
		for j := 0; j+1 < len(vals); j += 2 {
			id, _ := vals[j].(string)
			qty, _ := vals[j+1].(int64)
			out[i].Expired = append(out[i].Expired, ExpiredHold{OrderID: id, Qty: qty})
		}
	}
	return out, nil
}

// PendingExpiries returns the expired holds recorded in the outboxes of skus and not yet
// acknowledged, read in one pipeline.
func (s *Store) PendingExpiries(ctx context.Context, skus []string) ([]Expiry, error) {
	cmds := make([]*redis.MapStringStringCmd, len(skus))
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, sku := range skus {
			cmds[i] = p.HGetAll(ctx, s.outboxKey(sku))
		}
		return nil
	})
	var out []Expiry
	for i, cmd := range cmds {
		m, err := cmd.Result()
		if err != nil {
			return nil, fmt.Errorf("expiry outbox of %s: %w", skus[i], classify(err))
		}
		for order, v := range m {
			e, err := parseExpiry(skus[i], order, v)
			if err != nil {
				return nil, fmt.Errorf("expiry outbox of %s: %w", skus[i], err)
			}
			out = append(out, e)
		}
	}
	return out, nil
}

func parseExpiry(sku, order, v string) (Expiry, error) {
	parts := strings.Split(v, ",")
	if len(parts) != 3 {
		return Expiry{}, fmt.Errorf("entry %s=%q: want qty,deadline,expired_at", order, v)
	}
	var n [3]int64
	for i, p := range parts {
		x, err := strconv.ParseInt(p, 10, 64)
		if err != nil {
			return Expiry{}, fmt.Errorf("entry %s=%q: %w", order, v, err)
		}
		n[i] = x
	}
	return Expiry{SKU: sku, OrderID: order, Qty: n[0], Deadline: time.UnixMilli(n[1]).UTC(), ExpiredAt: time.UnixMilli(n[2]).UTC()}, nil
}

// AckExpiries removes published expiries from their outboxes, in one pipeline. Removing an entry
// that is already gone (another reaper acknowledged it) is a no-op.
func (s *Store) AckExpiries(ctx context.Context, done []Expiry) error {
	if len(done) == 0 {
		return nil
	}
	cmds := make([]*redis.IntCmd, len(done))
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, e := range done {
			cmds[i] = p.HDel(ctx, s.outboxKey(e.SKU), e.OrderID)
		}
		return nil
	})
	for i, cmd := range cmds {
		if err := cmd.Err(); err != nil {
			return fmt.Errorf("acknowledge expiry of %s on %s: %w", done[i].OrderID, done[i].SKU, classify(err))
		}
	}
	return nil
}
