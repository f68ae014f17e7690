package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// Warehouse stock events reach the counters through ApplyStockDeltas. Besides inv:{SKU}, each
// SKU has
//
//	p+"stockseq:{SKU}"  hash  warehouse id -> seq of the last stock event of that warehouse
//	                          counted in atp
//
// one field per warehouse that ever reported the SKU, so it stays small and needs no TTL.
// Reconciliation can read it: a mark below Postgres' warehouse_stock.last_seq means an applied
// event's delta is still on its way to Redis.

// StockDelta is what one applied warehouse stock event changed in a SKU's available-to-promise
// (Postgres on_hand - allocated).
type StockDelta struct {
	WarehouseID string
	Seq         int64
	ATP         int64
}

// DeltaResult is what ApplyStockDeltas did for one SKU.
type DeltaResult struct {
	Counted int   // deltas counted now
	Skipped int   // deltas counted before (a redelivery)
	Moved   int64 // how far atp moved
	// Missing is true when the SKU has no counters: atp did not move (reconciliation rebuilds
	// it from Postgres, which already holds these events), but the events are marked counted.
	Missing bool
}

func (s *Store) stockSeqKey(sku string) string { return s.prefix + "stockseq:{" + sku + "}" }

// ApplyStockDeltas moves the atp of every SKU in deltas by its events' deltas, each event once:
// per warehouse, an event counts only if its seq is above the last one counted, so a redelivered
// event changes nothing. held is never touched, so holds in flight are preserved. Each SKU's
// deltas must be in the order Postgres applied them. One script per SKU (its own hash slot), all
// in one pipeline. SKUs that failed are absent from the result; the error joins their errors.
func (s *Store) ApplyStockDeltas(ctx context.Context, deltas map[string][]StockDelta) (map[string]DeltaResult, error) {
	skus := make([]string, 0, len(deltas))
	calls := make([]scriptCall, 0, len(deltas))
	for sku, ds := range deltas {
		if err := checkSKU(sku); err != nil {
			return nil, fmt.Errorf("apply stock deltas: %w", err)
		}
		if len(ds) == 0 {
			continue
		}
		args := make([]any, 0, 3*len(ds))
		for _, d := range ds {
			if d.WarehouseID == "" || d.Seq < 1 {
				return nil, fmt.Errorf("apply stock deltas of %s: warehouse %q seq %d, want a warehouse and a positive seq", sku, d.WarehouseID, d.Seq)
			}
			args = append(args, d.WarehouseID, d.Seq, d.ATP)
		}
		skus = append(skus, sku)
		calls = append(calls, scriptCall{keys: []string{s.invKey(sku), s.stockSeqKey(sku)}, args: args})
	}
	out := make(map[string]DeltaResult, len(skus))
	if len(calls) == 0 {
		return out, nil
	}
	cmds := s.runPipelined(ctx, loadScript("stock_delta.lua"), calls)
	var errs []error
	for i, cmd := range cmds {
		v, err := cmd.Int64Slice()
		if err == nil && len(v) != 4 {
			err = fmt.Errorf("script reply has %d values, want 4", len(v))
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("apply stock deltas of %s: %w", skus[i], classify(err)))
			continue
		}
		out[skus[i]] = DeltaResult{Counted: int(v[0]), Skipped: int(v[1]), Missing: v[2] == 0, Moved: v[3]}
	}
	return out, errors.Join(errs...)
}

// StockSeqs returns, per warehouse, the seq of the last stock event counted in sku's atp.
func (s *Store) StockSeqs(ctx context.Context, sku string) (map[string]int64, error) {
	if err := checkSKU(sku); err != nil {
		return nil, err
	}
	m, err := s.rdb.HGetAll(ctx, s.stockSeqKey(sku)).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("stock seqs of %s: %w", sku, classify(err))
	}
	out := make(map[string]int64, len(m))
	for wh, v := range m {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("stock seq of %s at %s: %w", sku, wh, err)
		}
		out[wh] = n
	}
	return out, nil
}
