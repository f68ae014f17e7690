package config

import (
	"log/slog"
	"net/url"
	"strings"
	"time"
)

// Postgres is the database connection section shared by every process.
type Postgres struct {
	DatabaseURL      string `env:"DATABASE_URL" envDefault:"postgres://postgres@127.0.0.1:5432/orderpipe?sslmode=disable" help:"Postgres connection URL (libpq URL form)"`
	DatabaseMaxConns int32  `env:"DATABASE_MAX_CONNS" envDefault:"16" help:"maximum connections in this process's Postgres pool"`
}

// Validate checks the Postgres section.
func (p *Postgres) Validate() error {
	u, err := url.Parse(p.DatabaseURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return Errorf("DATABASE_URL", "want a postgres:// URL, got %q", p.DatabaseURL)
	}
	if p.DatabaseMaxConns < 1 || p.DatabaseMaxConns > 1000 {
		return Errorf("DATABASE_MAX_CONNS", "want 1..1000, got %d", p.DatabaseMaxConns)
	}
	return nil
}

// Redis is the Redis connection section. One address means a single node (or a proxy); several
// addresses mean Redis Cluster.
type Redis struct {
	RedisAddrs     []string      `env:"REDIS_ADDRS" envDefault:"127.0.0.1:6379" envSeparator:"," help:"Redis address, or comma-separated Redis Cluster seed addresses"`
	RedisPassword  string        `env:"REDIS_PASSWORD" secret:"true" help:"Redis password (AUTH); empty for none"`
	RedisDB        int           `env:"REDIS_DB" envDefault:"0" help:"Redis database number (single node only)"`
	RedisKeyPrefix string        `env:"REDIS_KEY_PREFIX" envDefault:"op:" help:"prefix of every key orderpipe writes; must not contain braces"`
	RedisTimeout   time.Duration `env:"REDIS_TIMEOUT" envDefault:"500ms" help:"dial, read and write timeout for Redis commands"`
	RedisPoolSize  int           `env:"REDIS_POOL_SIZE" envDefault:"64" help:"Redis connections per node in this process"`
}

// Validate checks the Redis section.
func (r *Redis) Validate() error {
	if len(r.RedisAddrs) == 0 || r.RedisAddrs[0] == "" {
		return Errorf("REDIS_ADDRS", "want at least one host:port")
	}
	if strings.ContainsAny(r.RedisKeyPrefix, "{}") {
		return Errorf("REDIS_KEY_PREFIX", "must not contain braces (they would change the hash slot), got %q", r.RedisKeyPrefix)
	}
	if r.RedisTimeout <= 0 {
		return Errorf("REDIS_TIMEOUT", "want a positive duration, got %s", r.RedisTimeout)
	}
	if r.RedisPoolSize < 1 {
		return Errorf("REDIS_POOL_SIZE", "want at least 1, got %d", r.RedisPoolSize)
	}
	return nil
}

// Kafka is the broker connection section.
type Kafka struct {
	KafkaBrokers        []string      `env:"KAFKA_BROKERS" envDefault:"127.0.0.1:9092" envSeparator:"," help:"comma-separated Kafka bootstrap brokers"`
	KafkaClientID       string        `env:"KAFKA_CLIENT_ID" envDefault:"orderpipe" help:"Kafka client id (shows in broker logs and quotas)"`
	KafkaProduceTimeout time.Duration `env:"KAFKA_PRODUCE_TIMEOUT" envDefault:"5s" help:"how long a produce may wait for the broker's acknowledgement before it counts as failed"`
	KafkaSessionTimeout time.Duration `env:"KAFKA_SESSION_TIMEOUT" envDefault:"10s" help:"consumer group session timeout: how soon a crashed consumer's partitions move to another member"`
}

// Validate checks the Kafka section.
func (k *Kafka) Validate() error {
	if len(k.KafkaBrokers) == 0 || k.KafkaBrokers[0] == "" {
		return Errorf("KAFKA_BROKERS", "want at least one host:port")
	}
	if k.KafkaSessionTimeout < time.Second || k.KafkaSessionTimeout > 5*time.Minute {
		return Errorf("KAFKA_SESSION_TIMEOUT", "want 1s..5m, got %s", k.KafkaSessionTimeout)
	}
	if k.KafkaProduceTimeout < 100*time.Millisecond {
		return Errorf("KAFKA_PRODUCE_TIMEOUT", "want at least 100ms, got %s", k.KafkaProduceTimeout)
	}
	return nil
}

// Log is the logging section.
type Log struct {
	LogLevel  string `env:"LOG_LEVEL" envDefault:"info" help:"debug, info, warn or error"`
	LogFormat string `env:"LOG_FORMAT" envDefault:"json" help:"json or text"`
}

// Validate checks the Log section.
func (l *Log) Validate() error {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(l.LogLevel)); err != nil {
		return Errorf("LOG_LEVEL", "want debug, info, warn or error, got %q", l.LogLevel)
	}
	if l.LogFormat != "json" && l.LogFormat != "text" {
		return Errorf("LOG_FORMAT", "want json or text, got %q", l.LogFormat)
	}
	return nil
}
