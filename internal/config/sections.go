package config

import (
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net/url"
	"os"
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
	RedisUsername  string        `env:"REDIS_USERNAME" help:"Redis ACL user (AUTH username password); empty: the default user"`
	RedisTLS       TLS           `envPrefix:"REDIS_"`

	tls *tls.Config // built by Validate from RedisTLS
}

// TLS is the TLS section of a connection: every field's variable carries the connection's
// prefix (REDIS_TLS, REDIS_TLS_CA_FILE, ...). Server certificates are verified unless
// TLS_INSECURE_SKIP_VERIFY says otherwise (never in production).
type TLS struct {
	Enabled            bool   `env:"TLS" envDefault:"false" help:"connect over TLS"`
	CAFile             string `env:"TLS_CA_FILE" help:"PEM file of the CAs that sign the server's certificate (empty: the system's)"`
	CertFile           string `env:"TLS_CERT_FILE" help:"PEM client certificate, for servers that require one (with TLS_KEY_FILE)"`
	KeyFile            string `env:"TLS_KEY_FILE" help:"PEM private key of the client certificate"`
	ServerName         string `env:"TLS_SERVER_NAME" help:"name the server's certificate must carry (empty: the host dialled)"`
	InsecureSkipVerify bool   `env:"TLS_INSECURE_SKIP_VERIFY" envDefault:"false" help:"do not verify the server's certificate (tests only; never in production)"`
}

// Config builds the tls.Config, or nil when TLS is off; prefix names the variables in errors.
func (t TLS) Config(prefix string) (*tls.Config, error) {
	if !t.Enabled {
		for name, v := range map[string]string{"TLS_CA_FILE": t.CAFile, "TLS_CERT_FILE": t.CertFile, "TLS_KEY_FILE": t.KeyFile} {
			if v != "" {
				return nil, Errorf(prefix+name, "is set but %sTLS is off: set %sTLS=true to use it", prefix, prefix)
			}
		}
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, Errorf(prefix+"TLS_CA_FILE", "%v", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, Errorf(prefix+"TLS_CA_FILE", "%s holds no PEM certificate", t.CAFile)
		}
	}
	switch {
	case t.CertFile != "" && t.KeyFile != "":
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, Errorf(prefix+"TLS_CERT_FILE", "with %sTLS_KEY_FILE: %v", prefix, err)
		}
		c.Certificates = []tls.Certificate{cert}
	case t.CertFile != "":
		return nil, Errorf(prefix+"TLS_KEY_FILE", "is required with %sTLS_CERT_FILE", prefix)
	case t.KeyFile != "":
		return nil, Errorf(prefix+"TLS_CERT_FILE", "is required with %sTLS_KEY_FILE", prefix)
	}
	return c, nil
}

// TLSConfig is the Redis connections' TLS configuration (nil: plaintext), as Validate built it.
func (r *Redis) TLSConfig() (*tls.Config, error) {
	if r.tls != nil || !r.RedisTLS.Enabled {
		return r.tls, nil
	}
	return r.RedisTLS.Config("REDIS_")
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
	if r.RedisUsername != "" && r.RedisPassword == "" {
		return Errorf("REDIS_PASSWORD", "is required with REDIS_USERNAME %q (ACL users authenticate with a password)", r.RedisUsername)
	}
	c, err := r.RedisTLS.Config("REDIS_")
	if err != nil {
		return err
	}
	r.tls = c
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
