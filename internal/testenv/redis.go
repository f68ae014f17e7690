package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"github.com/orderpipe/orderpipe/internal/redisstore"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// defaultRedisAddr is used when TEST_REDIS_ADDR is unset.
const defaultRedisAddr = "127.0.0.1:6379"

// Redis returns a client to the Redis at TEST_REDIS_ADDR (default
// 127.0.0.1:6379) and a key prefix unique to the test ("t:<hex>:"). Tests
// share the server with other tests running in parallel: they must use only
// keys under the prefix (and never FLUSHDB). When the test ends, every key
// under the prefix is deleted, with "rate:"+prefix keys (redis_rate prepends
// "rate:" to its keys), and the client is closed. A server that cannot be
// reached fails the test.
func Redis(t testing.TB) (*redis.Client, string) {
	t.Helper()
	addr := os.Getenv("TEST_REDIS_ADDR")
	if addr == "" {
		addr = defaultRedisAddr
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b) // never fails
	prefix := "t:" + hex.EncodeToString(b) + ":"

	client := redis.NewClient(&redis.Options{Addr: addr})
	if err := client.Ping(t.Context()).Err(); err != nil {
		_ = client.Close()
		t.Fatalf("ping test redis at %s (set TEST_REDIS_ADDR): %v", addr, err)
	}
	t.Cleanup(func() {
		defer func() { _ = client.Close() }()
		// t.Context is already cancelled when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, pattern := range []string{prefix + "*", "rate:" + prefix + "*"} {
			if err := redisstore.DeleteKeys(ctx, client, pattern); err != nil {
				t.Errorf("delete test keys %s: %v", pattern, err)
			}
		}
	})
	return client, prefix
}
