package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The published prices: one hash field per SKU holding its price timeline (a JSON document the
// pricing package defines), and a channel announcing the SKUs whose timeline changed. Neither is
// used inside a script, so neither needs a hash tag.
func (s *Store) pricesKey() string { return s.prefix + "prices" }

// pricesPublishedKey marks that every SKU's timeline was published (a full recompute). The prices
// hash alone cannot say so: without promotions it is rightly empty. After Redis lost its data the
// marker is gone too, and the promotion scheduler republishes at once.
func (s *Store) pricesPublishedKey() string { return s.prefix + "prices-published" }

// MarkPricesPublished records that a full recompute published every SKU's timeline.
func (s *Store) MarkPricesPublished(ctx context.Context) error {
	if err := s.rdb.Set(ctx, s.pricesPublishedKey(), time.Now().UTC().Format(time.RFC3339Nano), 0).Err(); err != nil {
		return fmt.Errorf("mark prices published: %w", classify(err))
	}
	return nil
}

// PricesPublished reports whether the marker of a full publish is there; false after Redis lost
// its data (or before the first full publish).
func (s *Store) PricesPublished(ctx context.Context) (bool, error) {
	n, err := s.rdb.Exists(ctx, s.pricesPublishedKey()).Result()
	if err != nil {
		return false, fmt.Errorf("prices published: %w", classify(err))
	}
	return n == 1, nil
}

// PricesChangedChannel is the pub/sub channel on which changed SKUs are announced, several per
// message, comma-separated.
func (s *Store) PricesChangedChannel() string { return s.prefix + "prices-changed" }

// PublishPrices writes the timelines of set (SKU -> document) and deletes those of remove, then
// announces every one of those SKUs on PricesChangedChannel, all in one round trip.
func (s *Store) PublishPrices(ctx context.Context, set map[string][]byte, remove []string) error {
	if len(set) == 0 && len(remove) == 0 {
		return nil
	}
	skus := make([]string, 0, len(set)+len(remove))
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		if len(set) > 0 {
			vals := make([]any, 0, 2*len(set))
			for sku, doc := range set {
				vals = append(vals, sku, doc)
				skus = append(skus, sku)
			}
			p.HSet(ctx, s.pricesKey(), vals...)
		}
		if len(remove) > 0 {
			p.HDel(ctx, s.pricesKey(), remove...)
			skus = append(skus, remove...)
		}
		// Announce in chunks so one message stays small.
		for i := 0; i < len(skus); i += 200 {
			p.Publish(ctx, s.PricesChangedChannel(), strings.Join(skus[i:min(i+200, len(skus))], ","))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("publish prices of %d SKUs: %w", len(skus), classify(err))
	}
	return nil
}

// Prices reads the published timelines of skus, or of every SKU when none are given. SKUs
// without one are absent from the result.
func (s *Store) Prices(ctx context.Context, skus ...string) (map[string][]byte, error) {
	out := map[string][]byte{}
	if len(skus) == 0 {
		all, err := s.rdb.HGetAll(ctx, s.pricesKey()).Result()
		if err != nil {
			return nil, fmt.Errorf("read prices: %w", classify(err))
		}
		for k, v := range all {
			out[k] = []byte(v)
		}
		return out, nil
	}
	vals, err := s.rdb.HMGet(ctx, s.pricesKey(), skus...).Result()
	if err != nil {
		return nil, fmt.Errorf("read prices of %d SKUs: %w", len(skus), classify(err))
	}
	for i, v := range vals {
		if str, ok := v.(string); ok {
			out[skus[i]] = []byte(str)
		}
	}
	return out, nil
}

// SubscribePricesChanged listens on PricesChangedChannel until ctx ends, calling changed with
// the SKUs of each message; synced is called whenever the subscription is (re)established, since
// messages sent while it was down are lost. It returns ctx's error.
func (s *Store) SubscribePricesChanged(ctx context.Context, changed func(skus []string), synced func()) error {
	return s.subscribe(ctx, s.PricesChangedChannel(), func(payload string) {
		if payload != "" {
			changed(strings.Split(payload, ","))
		}
	}, synced)
}

// PromoSold reads how many units of sku are held or sold at promotionID's price (0 before the
// first). The catalog reads it to show what is left under a promotion's stock cap.
func (s *Store) PromoSold(ctx context.Context, sku, promotionID string) (int64, error) {
	if err := checkSKU(sku); err != nil {
		return 0, err
	}
	n, err := s.rdb.HGet(ctx, s.promoKey(sku, promotionID), "sold").Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("promotion %s units sold of %s: %w", promotionID, sku, classify(err))
	}
	return n, nil
}

// PromoCounters reads the counters of one promotion on one SKU: promotional units held or sold,
// and per customer.
func (s *Store) PromoCounters(ctx context.Context, sku, promotionID string) (sold int64, customers map[string]int64, err error) {
	if err := checkSKU(sku); err != nil {
		return 0, nil, err
	}
	all, err := s.rdb.HGetAll(ctx, s.promoKey(sku, promotionID)).Result()
	if err != nil {
		return 0, nil, fmt.Errorf("promotion %s counters of %s: %w", promotionID, sku, classify(err))
	}
	customers = map[string]int64{}
	for k, v := range all {
		n, perr := strconv.ParseInt(v, 10, 64)
		if perr != nil {
			return 0, nil, fmt.Errorf("promotion %s counters of %s: field %s: %w", promotionID, sku, k, perr)
		}
		if k == "sold" {
			sold = n
		} else if c, ok := strings.CutPrefix(k, "c:"); ok {
			customers[c] = n
		}
	}
	return sold, customers, nil
}

// TryLock takes the lock name for ttl unless someone else holds it, or extends it when owner
// holds it already. It reports whether owner holds the lock now.
func (s *Store) TryLock(ctx context.Context, name, owner string, ttl time.Duration) (bool, error) {
	key := s.prefix + name
	ok, err := s.rdb.SetNX(ctx, key, owner, ttl).Result()
	if err != nil {
		return false, fmt.Errorf("lock %s: %w", name, classify(err))
	}
	if ok {
		return true, nil
	}
	// Extend only our own lock: compare and set in one step.
	res, err := s.rdb.Eval(ctx, `if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`, []string{key}, owner, ttl.Milliseconds()).Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		return false, fmt.Errorf("lock %s: %w", name, classify(err))
	}
	return res == 1, nil
}
