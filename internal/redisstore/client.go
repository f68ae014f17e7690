package redisstore

import (
	"github.com/redis/go-redis/v9"

	"github.com/orderpipe/orderpipe/internal/config"
)

// NewClient builds the Redis client: a single node for one address, Redis Cluster for several.
func NewClient(c config.Redis) redis.UniversalClient {
	return redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:        c.RedisAddrs,
		Password:     c.RedisPassword,
		DB:           c.RedisDB,
		DialTimeout:  c.RedisTimeout,
		ReadTimeout:  c.RedisTimeout,
		WriteTimeout: c.RedisTimeout,
		PoolSize:     c.RedisPoolSize,
		PoolTimeout:  c.RedisTimeout * 2,
		MaxRetries:   1,
	})
}
