package redisstore

import (
	"context"
	"fmt"
	"time"
)

// ExpiredHold is a hold whose deadline passed and whose units went back to ATP.
type ExpiredHold struct {
	OrderID string
	Qty     int64
}

// ExpireDue returns to ATP the units of at most limit holds of sku whose deadline is at or
// before now, marking each as expired so it ends exactly once (I6): a second caller, or a retry,
// finds nothing, and a late confirmation takes the units back once. One script, one {SKU} slot,
// so several reapers may run at once on Redis Cluster.
func (s *Store) ExpireDue(ctx context.Context, sku string, now time.Time, limit int) ([]ExpiredHold, error) {
	if err := checkSKU(sku); err != nil {
		return nil, err
	}
	if limit < 1 {
		return nil, fmt.Errorf("expire %s: limit %d, want at least 1", sku, limit)
	}
	holdPrefix := s.prefix + "hold:{" + sku + "}:"
	endedPrefix := s.prefix + "ended:{" + sku + "}:"
	cmds := s.runPipelined(ctx, s.expire, []scriptCall{{
		keys: []string{s.invKey(sku), s.holdsKey(sku)},
		args: []any{now.UnixMilli(), limit, holdPrefix, endedPrefix, s.endedTTL.Milliseconds(), s.promoPrefix(sku)},
	}})
	vals, err := cmds[0].Slice()
	if err != nil {
		return nil, fmt.Errorf("expire holds of %s: %w", sku, classify(err))
	}
	out := make([]ExpiredHold, 0, len(vals)/2)
	for i := 0; i+1 < len(vals); i += 2 {
		id, _ := vals[i].(string)
		qty, _ := vals[i+1].(int64)
		out = append(out, ExpiredHold{OrderID: id, Qty: qty})
	}
	return out, nil
}
