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

	"github.com/orderpipe/orderpipe/internal/admin"
	"github.com/orderpipe/orderpipe/internal/config"
	"github.com/orderpipe/orderpipe/internal/consumer"
	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/kafka"
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
	if help, err := config.Setup(args, getenv, stdout, "notifier", "the notifier", "e-mail per order and kind (group notifier) and sales figures (group reports), low priority", &cfg); help || err != nil {
		return err
	}
	log := cfg.Logger(stdout, "notifier")
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	d, err := newDeps(ctx, &cfg, reg)
	if err != nil {
		return err
	}
	defer d.close()
	pool, kcl, sender, renderer, claims, sales, m := d.pool, d.kcl, d.sender, d.renderer, d.claims, d.sales, d.m
	type lane struct {
		c      *consumer.Consumer
		topics []string
	}
	var lanes []lane
	for _, group := range []string{topology.GroupNotifier, topology.GroupReports} {
		if !cfg.runs(group) {
			continue
		}
		cc := cfg.consumerConfig(group, reg, log, postgres.NewDeadLetterLedger(pool))
		c, err := consumer.New(cc, d.handler(&cfg, group, log))
		if err != nil {
			return err
		}
		topics := []string{event.TopicOrderEvents}
		for i := range cc.RetryTiers {
			topics = append(topics, event.RetryTopic(cc.Group, i+1))
		}
		lanes = append(lanes, lane{c: c, topics: topics})
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
