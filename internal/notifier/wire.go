package notifier

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/config"
	"github.com/orderpipe/orderpipe/internal/consumer"
	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/kafka"
	omail "github.com/orderpipe/orderpipe/internal/mail"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/topology"
)

// Wiring is the processing of one notifier group (notifier or reports) built from Config: its
// handler and the settings of the live group's consumer, over clients it owns until Close.
// orderctl replay range builds one from the notifier's environment and runs the handler under a
// replay group id (consumer.Config.GroupID), so a replay executes exactly the live group's code.
// Group notifier deduplicates by (order, kind) claims in Postgres, group reports by processed
// events claimed under the group's logical name (Consumer.Group): a replay sends no e-mail and
// counts no sale the live group already did.
type Wiring struct {
	Handler  consumer.Handler
	Consumer consumer.Config
	deps     *deps
}

// Wire builds the processing of group (topology.GroupNotifier or topology.GroupReports).
func Wire(ctx context.Context, cfg Config, group string, log *slog.Logger, reg prometheus.Registerer) (*Wiring, error) {
	if group != topology.GroupNotifier && group != topology.GroupReports {
		return nil, fmt.Errorf("notifier: unknown group %q: want %s or %s", group, topology.GroupNotifier, topology.GroupReports)
	}
	d, err := newDeps(ctx, &cfg, reg)
	if err != nil {
		return nil, err
	}
	return &Wiring{Handler: d.handler(&cfg, group, log), Consumer: cfg.consumerConfig(group, reg, log, postgres.NewDeadLetterLedger(d.pool)), deps: d}, nil
}

// Close closes the clients Wire opened.
func (w *Wiring) Close() { w.deps.close() }

// deps are the clients and stores the notifier's groups share.
type deps struct {
	renderer  *omail.Renderer
	validator *event.Validator
	pool      *pgxpool.Pool
	kcl       *kgo.Client
	sender    *omail.SMTP
	claims    *postgres.NotificationStore
	sales     *postgres.ReportStore
	m         *metrics
	closers   []func()
}

func newDeps(ctx context.Context, cfg *Config, reg prometheus.Registerer) (*deps, error) {
	if cfg.SendLease < 2*cfg.SMTPTimeout {
		return nil, fmt.Errorf("configuration: %w", config.Errorf("NOTIFIER_SEND_LEASE", "want at least twice SMTP_TIMEOUT (%s): a live send must finish well within its lease, got %s", cfg.SMTPTimeout, cfg.SendLease))
	}
	d := &deps{m: newMetrics(reg)}
	tlsBase, err := cfg.tlsBase()
	if err != nil {
		return nil, err
	}
	d.renderer, err = omail.NewRenderer(omail.Shop{Name: cfg.ShopName, From: cfg.From, OrderBaseURL: cfg.OrderBaseURL})
	if err != nil {
		return nil, err
	}
	d.validator, err = event.NewValidator()
	if err != nil {
		return nil, fmt.Errorf("load event schemas: %w", err)
	}
	d.pool, err = postgres.Open(ctx, cfg.DatabaseURL, cfg.DatabaseMaxConns)
	if err != nil {
		return nil, err
	}
	d.closers = append(d.closers, d.pool.Close)
	d.kcl, err = kafka.NewClient(kafka.ClientConfig{Brokers: cfg.KafkaBrokers, ClientID: cfg.KafkaClientID + "-notifier",
		ProduceTimeout: cfg.KafkaProduceTimeout, Registerer: reg})
	if err != nil {
		d.close()
		return nil, err
	}
	d.closers = append(d.closers, d.kcl.Close)
	d.sender = omail.NewSMTP(omail.SMTPConfig{Host: cfg.SMTPHost, Port: cfg.SMTPPort, TLS: cfg.SMTPTLS, Username: cfg.SMTPUsername,
		Password: cfg.SMTPPassword, Timeout: cfg.SMTPTimeout, HeloName: cfg.SMTPHelo, TLSBase: tlsBase})
	d.claims = postgres.NewNotificationStore(d.pool)
	d.sales = postgres.NewReportStore(d.pool)
	return d, nil
}

func (d *deps) close() {
	for i := len(d.closers) - 1; i >= 0; i-- {
		d.closers[i]()
	}
	d.closers = nil
}

// handler is the consumer.Handler of group.
func (d *deps) handler(cfg *Config, group string, log *slog.Logger) consumer.Handler {
	if group == topology.GroupReports {
		return newReports(group, d.sales, d.validator, log, d.m)
	}
	return newNotifier(d.claims, d.sender, d.renderer, d.validator, cfg.SendLease, cfg.MaxSends, log, d.m)
}

// consumerConfig is the consumer of group on orders.events: small fetches (low priority), the
// group's own start position, batch size and retry tiers.
func (cfg *Config) consumerConfig(group string, reg prometheus.Registerer, log *slog.Logger, dl consumer.DeadLetterMemory) consumer.Config {
	cc := consumer.Config{
		Group: group, Topics: []string{event.TopicOrderEvents}, Brokers: cfg.KafkaBrokers,
		ClientID: cfg.KafkaClientID + "-" + group, RetryInPlaceFor: cfg.RetryInPlace,
		DrainTimeout: cfg.ShutdownTimeout, Registerer: reg, Log: log, DeadLetters: dl,
		KafkaOpts: []kgo.Opt{
			kgo.SessionTimeout(cfg.KafkaSessionTimeout), kgo.HeartbeatInterval(cfg.KafkaSessionTimeout / 5),
			kgo.FetchMaxBytes(fetchMaxBytes), kgo.FetchMaxPartitionBytes(fetchMaxPartBytes),
		},
	}
	if group == topology.GroupReports {
		cc.StartAt, cc.MaxPollRecords, cc.RetryTiers = cfg.ReportSettings.StartAt, cfg.ReportSettings.BatchSize, cfg.ReportSettings.RetryTiers
	} else {
		cc.StartAt, cc.MaxPollRecords, cc.RetryTiers = cfg.Settings.StartAt, cfg.Settings.BatchSize, cfg.Settings.RetryTiers
	}
	return cc
}
