package notifier

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/admin"
	"github.com/orderpipe/orderpipe/internal/config"
	"github.com/orderpipe/orderpipe/internal/consumer"
	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/kafka"
	omail "github.com/orderpipe/orderpipe/internal/mail"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/topology"
)

// Fetch limits of the low-priority lanes: small fetches, so they take little broker and network
// capacity and pausing drops little.
const (
	fetchMaxBytes     = 1 << 20
	fetchMaxPartBytes = 256 << 10
)

// Run runs the notifier until ctx ends, then finishes the batches in hand (e-mails being sent),
// commits and leaves the groups. Configuration comes from environment variables (-h lists them).
func Run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var cfg Config
	if config.WantsHelp(args) {
		return config.Usage(stdout, "notifier", "e-mail per order and kind (group notifier) and sales figures (group reports), low priority", &cfg)
	}
	if len(args) > 0 {
		return fmt.Errorf("unexpected arguments %q: the notifier is configured by environment variables (see -h)", args)
	}
	if err := config.Load(&cfg, getenv); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	if cfg.SendLease < 2*cfg.SMTPTimeout {
		return fmt.Errorf("configuration: %w", config.Errorf("NOTIFIER_SEND_LEASE", "want at least twice SMTP_TIMEOUT (%s): a live send must finish well within its lease, got %s", cfg.SMTPTimeout, cfg.SendLease))
	}
	log := cfg.Logger(stdout, "notifier")
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := newMetrics(reg)

	tlsBase, err := cfg.tlsBase()
	if err != nil {
		return err
	}
	renderer, err := omail.NewRenderer(omail.Shop{Name: cfg.ShopName, From: cfg.From, OrderBaseURL: cfg.OrderBaseURL})
	if err != nil {
		return err
	}
	validator, err := event.NewValidator()
	if err != nil {
		return fmt.Errorf("load event schemas: %w", err)
	}
	pool, err := postgres.Open(ctx, cfg.DatabaseURL, cfg.DatabaseMaxConns)
	if err != nil {
		return err
	}
	defer pool.Close()
	kcl, err := kafka.NewClient(kafka.ClientConfig{Brokers: cfg.KafkaBrokers, ClientID: cfg.KafkaClientID + "-notifier",
		ProduceTimeout: cfg.KafkaProduceTimeout, Registerer: reg})
	if err != nil {
		return err
	}
	defer kcl.Close()

	sender := omail.NewSMTP(omail.SMTPConfig{Host: cfg.SMTPHost, Port: cfg.SMTPPort, TLS: cfg.SMTPTLS, Username: cfg.SMTPUsername,
		Password: cfg.SMTPPassword, Timeout: cfg.SMTPTimeout, HeloName: cfg.SMTPHelo, TLSBase: tlsBase})
	claims := postgres.NewNotificationStore(pool)
	sales := postgres.NewReportStore(pool)
	kopts := []kgo.Opt{
		kgo.SessionTimeout(cfg.KafkaSessionTimeout), kgo.HeartbeatInterval(cfg.KafkaSessionTimeout / 5),
		kgo.FetchMaxBytes(fetchMaxBytes), kgo.FetchMaxPartitionBytes(fetchMaxPartBytes),
	}
	type lane struct {
		c      *consumer.Consumer
		topics []string
	}
	var lanes []lane
	newLane := func(cc consumer.Config, h consumer.Handler) error {
		cc.Topics = []string{event.TopicOrderEvents}
		cc.Brokers, cc.ClientID = cfg.KafkaBrokers, cfg.KafkaClientID+"-"+cc.Group
		cc.DrainTimeout, cc.Registerer, cc.Log, cc.KafkaOpts = cfg.ShutdownTimeout, reg, log, kopts
		c, err := consumer.New(cc, h)
		if err != nil {
			return err
		}
		topics := []string{event.TopicOrderEvents}
		for i := range cc.RetryTiers {
			topics = append(topics, event.RetryTopic(cc.Group, i+1))
		}
		lanes = append(lanes, lane{c: c, topics: topics})
		return nil
	}
	if cfg.runs(topology.GroupNotifier) {
		h := newNotifier(claims, sender, renderer, validator, cfg.SendLease, cfg.MaxSends, log, m)
		if err := newLane(consumer.Config{Group: topology.GroupNotifier, StartAt: cfg.Settings.StartAt, MaxPollRecords: cfg.Settings.BatchSize,
			RetryInPlaceFor: cfg.RetryInPlace, RetryTiers: cfg.Settings.RetryTiers}, h); err != nil {
			return err
		}
	}
	if cfg.runs(topology.GroupReports) {
		h := newReports(topology.GroupReports, sales, validator, log, m)
		if err := newLane(consumer.Config{Group: topology.GroupReports, StartAt: cfg.ReportSettings.StartAt, MaxPollRecords: cfg.ReportSettings.BatchSize,
			RetryInPlaceFor: cfg.RetryInPlace, RetryTiers: cfg.ReportSettings.RetryTiers}, h); err != nil {
			return err
		}
	}

	adm, err := admin.Listen(cfg.AdminAddr, []admin.Check{
		{Name: "postgres", Fn: pool.Ping},
		{Name: "kafka", Fn: func(ctx context.Context) error { return kafka.Ping(ctx, kcl) }},
	}, reg, log)
	if err != nil {
		return err
	}
	log.Info("listening", "admin_addr", adm.Addr(), "groups", strings.Join(cfg.Groups, ","),
		"smtp", sender.Addr(), "smtp_tls", cfg.SMTPTLS)

	var g run.Group
	cctx, stopConsumers := context.WithCancel(context.Background())
	defer stopConsumers()
	for _, l := range lanes {
		g.Add(func() error { return l.c.Run(cctx) }, func(error) { adm.Drain(); stopConsumers() })
	}
	bctx, stopBackground := context.WithCancel(context.Background())
	defer stopBackground()
	if cfg.PauseLag > 0 {
		gate := newGate(kadm.NewClient(kcl), cfg.CriticalGroups, cfg.PauseLag, cfg.LagInterval, cfg.MaxPause, cfg.MinRun, func(paused bool) {
			for _, l := range lanes {
				if paused {
					l.c.Client().PauseFetchTopics(l.topics...)
				} else {
					l.c.Client().ResumeFetchTopics(l.topics...)
				}
			}
		}, log, m)
		g.Add(func() error { return gate.Run(bctx) }, func(error) { stopBackground() })
	}
	if cfg.runs(topology.GroupReports) && cfg.DailyTo != "" {
		loc, _ := time.LoadLocation(cfg.Timezone) // validated
		at, _ := cfg.dailyAt()                    // validated
		s := newSummary(claims, sales, sender, renderer, cfg.DailyTo, loc, at, cfg.SendLease, log, m)
		g.Add(func() error { return s.Run(bctx, cfg.CheckEvery) }, func(error) { stopBackground() })
	}
	g.Add(adm.Actor())
	g.Add(admin.UntilDone(ctx))
	err = g.Run()
	log.Info("stopped")
	return err
}

// tlsBase is the TLS configuration of STARTTLS: the system roots plus SMTP_TLS_CA_FILE.
func (cfg *Config) tlsBase() (*tls.Config, error) {
	base := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: cfg.SMTPHost}
	if cfg.SMTPCAFile == "" {
		return base, nil
	}
	pem, err := os.ReadFile(cfg.SMTPCAFile)
	if err != nil {
		return nil, fmt.Errorf("configuration: %w", config.Errorf("SMTP_TLS_CA_FILE", "%v", err))
	}
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("configuration: %w", config.Errorf("SMTP_TLS_CA_FILE", "no PEM certificate in %s", cfg.SMTPCAFile))
	}
	base.RootCAs = roots
	return base, nil
}
