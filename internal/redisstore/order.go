package redisstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// PendingOrder returns the snapshot stored by FinishIdempotent; false when
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
