package redisstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// StockChangedChannel is the pub/sub channel (p+"stock-changed") on which a SKU is announced
// whenever units may have become available again: holds released or expired, stock received,
// counters repaired or rebuilt. Every api instance listens and forgets what it cached about the
// SKU (availability, "sold out"). Messages may be lost (pub/sub is fire and forget); listeners
// bound that with a short TTL of their own.
func (s *Store) StockChangedChannel() string { return s.prefix + "stock-changed" }

// PublishStockChanged announces skus on StockChangedChannel, one message each, in one pipeline.
func (s *Store) PublishStockChanged(ctx context.Context, skus ...string) error {
	if len(skus) == 0 {
		return nil
	}
	ch := s.StockChangedChannel()
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, sku := range skus {
			p.Publish(ctx, ch, sku)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("publish stock changed: %w", classify(err))
	}
	return nil
}

// SubscribeStockChanged listens on StockChangedChannel until ctx ends, calling changed with
// each announced SKU. The subscription reconnects by itself; synced is called every time it is
// (re)established, because messages published while it was down are lost and the listener must
// forget everything it cached. It returns ctx's error.
func (s *Store) SubscribeStockChanged(ctx context.Context, changed func(sku string), synced func()) error {
	return s.subscribe(ctx, s.StockChangedChannel(), changed, synced)
}

// subscribe listens on channel until ctx ends, calling message with each payload and synced every
// time the subscription is (re)established. It returns ctx's error.
func (s *Store) subscribe(ctx context.Context, channel string, message func(payload string), synced func()) error {
	ps := s.rdb.Subscribe(ctx, channel)
	// A blocked receive does not watch ctx: closing the subscription ends it.
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer stop()
	defer ps.Close()
	for {
		msg, err := ps.ReceiveTimeout(ctx, 30*time.Second)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			// A timeout just means no message; go-redis pings and reconnects by itself on
			// the next receive. Lost connections show up as a fresh subscription below.
			if isTimeout(err) {
				continue
			}
			// Connection trouble: the next receive reconnects and re-subscribes; wait a
			// little so a Redis that is down does not turn this into a busy loop.
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				synced()
			}
		case *redis.Message:
			message(m.Payload)
		}
	}
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// announceReleased publishes the SKUs whose holds a release ended (units back in ATP), so api
// instances that consider them sold out look again. Best effort: a lost announcement is bounded
// by the listeners' own TTL, and the release itself already succeeded.
func (s *Store) announceReleased(ctx context.Context, res []HoldResult) {
	var skus []string
	for _, r := range res {
		if r.Found && r.Qty > 0 {
			skus = append(skus, r.SKU)
		}
	}
	_ = s.PublishStockChanged(ctx, skus...)
}
