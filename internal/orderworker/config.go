package orderworker

import (
	"time"

	"github.com/orderpipe/orderpipe/internal/config"
	"github.com/orderpipe/orderpipe/internal/payment"
	"github.com/orderpipe/orderpipe/internal/topology"
)

// Config is every setting of the order-worker process.
type Config struct {
	config.Postgres
	config.Redis
	config.Kafka
	config.Log
	payment.Settings
	Worker
}

// Worker are order-worker's own settings.
type Worker struct {
	AdminAddr       string          `env:"WORKER_ADMIN_ADDR" envDefault:":9091" help:"listen address of /livez, /readyz and /metrics"`
	Group           string          `env:"ORDER_WORKER_GROUP" envDefault:"order-worker" help:"consumer group: its Kafka group, retry and dead-letter topics, and the name processed events are claimed under; keep it (to re-process a range beside the live group, use orderctl replay range)"`
	StartAt         string          `env:"ORDER_WORKER_START_AT" envDefault:"earliest" help:"where a new group starts: earliest (every retained order is processed; safe, processing is idempotent) or latest"`
	BatchSize       int             `env:"ORDER_WORKER_BATCH_SIZE" envDefault:"500" help:"most records processed in one Postgres transaction"`
	Concurrency     int             `env:"ORDER_WORKER_PAYMENT_CONCURRENCY" envDefault:"32" help:"parallel payment requests per batch"`
	RetryInPlace    time.Duration   `env:"ORDER_WORKER_RETRY_IN_PLACE" envDefault:"10s" help:"how long a transient failure is retried in place before the record moves to a retry topic"`
	RetryTiers      []time.Duration `env:"ORDER_WORKER_RETRY_TIERS" envDefault:"30s,5m" envSeparator:"," help:"delays of the retry topics order-worker.retry.1..N; after the last, the dead-letter topic"`
	MaxStarve       time.Duration   `env:"ORDER_WORKER_MAX_STARVE" envDefault:"2s" help:"longest time the standard lane waits while an express backlog lasts"`
	EventSource     string          `env:"ORDER_WORKER_EVENT_SOURCE" envDefault:"orderpipe/order-worker" help:"CloudEvents source of the outcome events"`
	ShutdownTimeout time.Duration   `env:"WORKER_SHUTDOWN_TIMEOUT" envDefault:"30s" help:"how long shutdown waits for the batch in hand to finish and commit"`
}

// Validate checks the order-worker settings.
func (s *Worker) Validate() error {
	switch {
	case s.AdminAddr == "":
		return config.Errorf("WORKER_ADMIN_ADDR", "must not be empty")
	case s.Group == "":
		return config.Errorf("ORDER_WORKER_GROUP", "must not be empty")
	case s.StartAt != "earliest" && s.StartAt != "latest":
		return config.Errorf("ORDER_WORKER_START_AT", "want earliest or latest, got %q", s.StartAt)
	case s.BatchSize < 1 || s.BatchSize > 10000:
		return config.Errorf("ORDER_WORKER_BATCH_SIZE", "want 1..10000, got %d", s.BatchSize)
	case s.Concurrency < 1 || s.Concurrency > 1000:
		return config.Errorf("ORDER_WORKER_PAYMENT_CONCURRENCY", "want 1..1000, got %d", s.Concurrency)
	case s.RetryInPlace < 0 || s.RetryInPlace > 5*time.Minute:
		return config.Errorf("ORDER_WORKER_RETRY_IN_PLACE", "want 0..5m (it holds the partition), got %s", s.RetryInPlace)
	case s.MaxStarve <= 0:
		return config.Errorf("ORDER_WORKER_MAX_STARVE", "want a positive duration, got %s", s.MaxStarve)
	case s.ShutdownTimeout <= 0:
		return config.Errorf("WORKER_SHUTDOWN_TIMEOUT", "want a positive duration, got %s", s.ShutdownTimeout)
	}
	for _, g := range topology.Groups() {
		if g.Name == topology.GroupOrderWorker && len(s.RetryTiers) != len(g.RetryTiers) && s.Group == topology.GroupOrderWorker {
			return config.Errorf("ORDER_WORKER_RETRY_TIERS", "want %d tiers (the provisioned retry topics), got %d", len(g.RetryTiers), len(s.RetryTiers))
		}
	}
	for _, d := range s.RetryTiers {
		if d <= 0 {
			return config.Errorf("ORDER_WORKER_RETRY_TIERS", "want positive durations, got %s", d)
		}
	}
	return nil
}
