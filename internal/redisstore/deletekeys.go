package redisstore

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// DeleteKeys deletes every key matching pattern (a SCAN pattern, such as a test's or a
// benchmark's prefix followed by *), walking the keyspace with SCAN and unlinking in batches so
// the server is never blocked.
func DeleteKeys(ctx context.Context, rdb redis.UniversalClient, pattern string) error {
	iter := rdb.Scan(ctx, 0, pattern, 1000).Iterator()
	batch := make([]string, 0, 1000)
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == cap(batch) {
			if err := rdb.Unlink(ctx, batch...).Err(); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if err := iter.Err(); err != nil {
		return err
	}
	if len(batch) > 0 {
		return rdb.Unlink(ctx, batch...).Err()
	}
	return nil
}
