package inventorysync

import (
	"github.com/orderpipe/orderpipe/internal/reaper"
	"github.com/orderpipe/orderpipe/internal/reconcile"
	"time"

	"github.com/orderpipe/orderpipe/internal/config"
	"github.com/orderpipe/orderpipe/internal/consumer"
)

// Config is every setting of the inventory-sync process.
type Config struct {
	config.Postgres
	config.Redis
	config.Kafka
	config.Log
	Reaper    reaper.Settings
	Reconcile reconcile.Settings
	Sync
}

// Sync are inventory-sync's own settings.
type Sync struct {
	AdminAddr       string        `env:"INVENTORY_ADMIN_ADDR" envDefault:":9093" help:"listen address of /livez, /readyz and /metrics (not 9092: the development broker listens there)"`
	Group           string        `env:"INVENTORY_SYNC_GROUP" envDefault:"inventory-sync" help:"consumer group (its dead-letter topic must exist); to re-apply a range beside the live group, use orderctl replay range"`
	StartAt         string        `env:"INVENTORY_SYNC_START_AT" envDefault:"earliest" help:"where a new group starts: earliest (every retained stock event; safe, stale and repeated events change nothing) or latest"`
	BatchSize       int           `env:"INVENTORY_SYNC_BATCH_SIZE" envDefault:"500" help:"most stock events applied in one Postgres transaction"`
	RetryInPlace    time.Duration `env:"INVENTORY_SYNC_RETRY_IN_PLACE" envDefault:"5s" help:"how long a failing batch is retried at once before its partition pauses between attempts (stock events are never skipped or reordered)"`
	MaxBackoff      time.Duration `env:"INVENTORY_SYNC_MAX_BACKOFF" envDefault:"5s" help:"longest pause of a partition between attempts of a failing event"`
	EventSource     string        `env:"INVENTORY_SYNC_EVENT_SOURCE" envDefault:"orderpipe/inventory-sync" help:"CloudEvents source of the OrderShipped events"`
	DeltaRetention  time.Duration `env:"INVENTORY_DELTA_RETENTION" envDefault:"192h" help:"how long the record of each applied event is kept for redeliveries; longer than the topic's retention (7 days)"`
	ShutdownTimeout time.Duration `env:"INVENTORY_SHUTDOWN_TIMEOUT" envDefault:"30s" help:"how long shutdown waits for the batch in hand to finish and commit"`
}

// Validate checks the inventory-sync settings.
func (s *Sync) Validate() error {
	switch {
	case s.AdminAddr == "":
		return config.Errorf("INVENTORY_ADMIN_ADDR", "must not be empty")
	case s.Group == "":
		return config.Errorf("INVENTORY_SYNC_GROUP", "must not be empty")
	case s.StartAt != consumer.StartEarliest && s.StartAt != consumer.StartLatest:
		return config.Errorf("INVENTORY_SYNC_START_AT", "want earliest or latest, got %q", s.StartAt)
	case s.BatchSize < 1 || s.BatchSize > 10000:
		return config.Errorf("INVENTORY_SYNC_BATCH_SIZE", "want 1..10000, got %d", s.BatchSize)
	case s.RetryInPlace < 0 || s.RetryInPlace > consumer.MaxRetryInPlaceFor:
		return config.Errorf("INVENTORY_SYNC_RETRY_IN_PLACE", "want 0..%s (rebalances wait meanwhile), got %s", consumer.MaxRetryInPlaceFor, s.RetryInPlace)
	case s.MaxBackoff < 10*time.Millisecond || s.MaxBackoff > 5*time.Minute:
		return config.Errorf("INVENTORY_SYNC_MAX_BACKOFF", "want 10ms..5m, got %s", s.MaxBackoff)
	case s.EventSource == "":
		return config.Errorf("INVENTORY_SYNC_EVENT_SOURCE", "must not be empty")
	case s.DeltaRetention < 24*time.Hour:
		return config.Errorf("INVENTORY_DELTA_RETENTION", "want at least 24h (longer than the topic's retention), got %s", s.DeltaRetention)
	case s.ShutdownTimeout <= 0:
		return config.Errorf("INVENTORY_SHUTDOWN_TIMEOUT", "want a positive duration, got %s", s.ShutdownTimeout)
	}
	return nil
}
