package redisstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// PutPendingOrder stores the JSON snapshot of a just-accepted order for ttl,
// so GET /v1/orders/{id} can answer before order-worker has written Postgres.
func (s *Store) PutPendingOrder(ctx context.Context, orderID string, doc []byte, ttl time.Duration) error {
	if orderID == "" {
		return errors.New("put pending order: empty order id")
	}
	if ttl <= 0 {
		return fmt.Errorf("put pending order %s: ttl %s, want > 0", orderID, ttl)
	}
	if err := s.rdb.Set(ctx, s.orderKey(orderID), doc, ttl).Err(); err != nil {
		return fmt.Errorf("put pending order %s: %w", orderID, classify(err))
	}
	return nil
}

// PendingOrder returns the snapshot stored by PutPendingOrder; false when
// there is none (never stored or expired).
func (s *Store) PendingOrder(ctx context.Context, orderID string) ([]byte, bool, error) {
	doc, err := s.rdb.Get(ctx, s.orderKey(orderID)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("pending order %s: %w", orderID, classify(err))
	}
	return doc, true, nil
}

// DeletePendingOrder removes the snapshot of an order the api ended up refusing (the broker did
// not acknowledge it), so GET does not show a refused order as pending.
func (s *Store) DeletePendingOrder(ctx context.Context, orderID string) error {
	if err := s.rdb.Del(ctx, s.orderKey(orderID)).Err(); err != nil {
		return fmt.Errorf("delete pending order %s: %w", orderID, classify(err))
	}
	return nil
}
