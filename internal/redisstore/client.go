package redisstore

import (
	"context"
	"fmt"
	"net"

	"github.com/redis/go-redis/v9"

	"github.com/orderpipe/orderpipe/internal/config"
)

// NewClient builds the Redis client: a single node for one address, Redis Cluster for several;
// over TLS and as an ACL user when the settings say so.
func NewClient(c config.Redis) redis.UniversalClient {
	tlsConfig, err := c.TLSConfig()
	opts := &redis.UniversalOptions{
		Addrs:        c.RedisAddrs,
		Username:     c.RedisUsername,
		Password:     c.RedisPassword,
		TLSConfig:    tlsConfig,
		DB:           c.RedisDB,
		DialTimeout:  c.RedisTimeout,
		ReadTimeout:  c.RedisTimeout,
		WriteTimeout: c.RedisTimeout,
		PoolSize:     c.RedisPoolSize,
		PoolTimeout:  c.RedisTimeout * 2,
		MaxRetries:   1,
	}
	if err != nil {
		// config.Load's validation reports this at start; settings built without it fail every
		// command with the reason instead of silently connecting in plaintext.
		opts.Dialer = func(context.Context, string, string) (net.Conn, error) { return nil, err }
	}
	return redis.NewUniversalClient(opts)
}

// AutoPipeline returns client's auto-pipeliner (go-redis, full duplex): concurrent callers'
// commands share one held connection, written together and answered in order, so under load
// one write and one read carry many orders' commands instead of one round trip each. A
// Pipelined call rides the same connection as one contiguous batch. Callers block exactly as on
// client; errors, timeouts (REDIS_TIMEOUT) and retries are the client's. Closing client closes
// it.
func AutoPipeline(client redis.UniversalClient) (*redis.AutoPipeliner, error) {
	ap, err := client.AutoPipelineWithOptions(&redis.AutoPipelineOptions{
		FullDuplex:           true,
		MaxBatchSize:         300,
		MaxBatchBytes:        128 << 10,
		MaxConcurrentBatches: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("redis auto-pipeline: %w", err)
	}
	return ap, nil
}
