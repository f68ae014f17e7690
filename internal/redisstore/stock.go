package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// Stock is the Redis view of one SKU.
type Stock struct {
	ATP  int64 // available to promise
	Held int64 // units held by pending orders
	// Known is false when Redis has no counters for the SKU (never loaded or
	// lost): availability is unknown, not zero.
	Known bool
}

// Availability returns the counters of sku.
func (s *Store) Availability(ctx context.Context, sku string) (Stock, error) {
	if err := checkSKU(sku); err != nil {
		return Stock{}, err
	}
	vals, err := s.rdb.HMGet(ctx, s.invKey(sku), "atp", "held").Result()
	if err != nil {
		return Stock{}, fmt.Errorf("availability %s: %w", sku, classify(err))
	}
	st, err := parseStock(vals)
	if err != nil {
		return Stock{}, fmt.Errorf("availability %s: %w", sku, err)
	}
	return st, nil
}

// Availabilities returns the counters of every SKU in skus, read in one
// pipeline. Every requested SKU is in the map, with Known false when absent.
func (s *Store) Availabilities(ctx context.Context, skus []string) (map[string]Stock, error) {
	for _, sku := range skus {
		if err := checkSKU(sku); err != nil {
			return nil, err
		}
	}
	cmds := make([]*redis.SliceCmd, len(skus))
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, sku := range skus {
			cmds[i] = p.HMGet(ctx, s.invKey(sku), "atp", "held")
		}
		return nil
	})
	out := make(map[string]Stock, len(skus))
	for i, cmd := range cmds {
		vals, err := cmd.Result()
		if err != nil {
			return nil, fmt.Errorf("availability %s: %w", skus[i], classify(err))
		}
		st, err := parseStock(vals)
		if err != nil {
			return nil, fmt.Errorf("availability %s: %w", skus[i], err)
		}
		out[skus[i]] = st
	}
	return out, nil
}

// parseStock reads an HMGET atp held reply.
func parseStock(vals []any) (Stock, error) {
	if len(vals) != 2 || vals[0] == nil {
		return Stock{}, nil
	}
	atp, err := parseCounter(vals[0])
	if err != nil {
		return Stock{}, fmt.Errorf("atp: %w", err)
	}
	held, err := parseCounter(vals[1])
	if err != nil {
		return Stock{}, fmt.Errorf("held: %w", err)
	}
	return Stock{ATP: atp, Held: held, Known: true}, nil
}

func parseCounter(v any) (int64, error) {
	if v == nil {
		return 0, nil
	}
	str, ok := v.(string)
	if !ok {
		return 0, fmt.Errorf("unexpected type %T", v)
	}
	return strconv.ParseInt(str, 10, 64)
}

// SeedStock creates the counters of every SKU in atp that has none yet (ATP
// as given, held 0), in one pipeline. Live counters are never overwritten.
// It returns how many SKUs were created.
func (s *Store) SeedStock(ctx context.Context, atp map[string]int64) (int, error) {
	skus := make([]string, 0, len(atp))
	for sku, n := range atp {
		if err := checkSKU(sku); err != nil {
			return 0, fmt.Errorf("seed stock: %w", err)
		}
		if n < 0 {
			return 0, fmt.Errorf("seed stock %s: atp %d, want >= 0", sku, n)
		}
		skus = append(skus, sku)
	}
	cmds := make([]*redis.BoolCmd, len(skus))
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, sku := range skus {
			// The atp field decides: it exists exactly when the counters do.
			cmds[i] = p.HSetNX(ctx, s.invKey(sku), "atp", atp[sku])
			p.HSetNX(ctx, s.invKey(sku), "held", 0)
		}
		return nil
	})
	created := 0
	var errs []error
	for i, cmd := range cmds {
		ok, err := cmd.Result()
		if err != nil {
			errs = append(errs, fmt.Errorf("seed stock %s: %w", skus[i], classify(err)))
			continue
		}
		if ok {
			created++
		}
	}
	return created, errors.Join(errs...)
}

// SetStock overwrites the ATP of sku and keeps its held units (tests, admin
// and reconciliation). It creates the counters when missing.
func (s *Store) SetStock(ctx context.Context, sku string, atp int64) error {
	if err := checkSKU(sku); err != nil {
		return err
	}
	key := s.invKey(sku)
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, key, "atp", atp)
		p.HSetNX(ctx, key, "held", 0)
		return nil
	})
	if err != nil {
		return fmt.Errorf("set stock %s: %w", sku, classify(err))
	}
	return nil
}
