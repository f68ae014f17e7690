package notifier

import (
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"slices"
	"strings"
	"time"
	_ "time/tzdata" // REPORTS_TIMEZONE works on images without a zoneinfo database

	"github.com/orderpipe/orderpipe/internal/config"
	omail "github.com/orderpipe/orderpipe/internal/mail"
	"github.com/orderpipe/orderpipe/internal/topology"
)

// Config is every setting of the notifier process.
type Config struct {
	Postgres
	config.Kafka
	config.Log
	Settings
	SMTP
	Mail
	ReportSettings
}

// Postgres is the database section with a small default pool: the notifier is a low-priority
// process and must not take connections the order path needs.
type Postgres struct {
	DatabaseURL      string `env:"DATABASE_URL" envDefault:"postgres://postgres@127.0.0.1:5432/orderpipe?sslmode=disable" help:"Postgres connection URL (libpq URL form)"`
	DatabaseMaxConns int32  `env:"DATABASE_MAX_CONNS" envDefault:"4" help:"maximum connections in the notifier's Postgres pool (kept small: a low-priority process)"`
}

// Validate checks the database section.
func (p *Postgres) Validate() error {
	return (&config.Postgres{DatabaseURL: p.DatabaseURL, DatabaseMaxConns: p.DatabaseMaxConns}).Validate()
}

// Groups the notifier process can run.
var runnable = []string{topology.GroupNotifier, topology.GroupReports}

// Settings are the notifier's own settings: which groups it runs and how much it may take.
type Settings struct {
	AdminAddr       string          `env:"NOTIFIER_ADMIN_ADDR" envDefault:":9095" help:"listen address of /livez, /readyz and /metrics"`
	Groups          []string        `env:"NOTIFIER_GROUPS" envDefault:"notifier,reports" envSeparator:"," help:"consumer groups this process runs: notifier (e-mail), reports (sales figures), or both"`
	StartAt         string          `env:"NOTIFIER_START_AT" envDefault:"earliest" help:"where a new notifier group starts on orders.events: earliest (no e-mail is missed) or latest (first deployment on a system with history: do not e-mail old orders)"`
	BatchSize       int             `env:"NOTIFIER_BATCH_SIZE" envDefault:"50" help:"most records in one notifier batch (small: a low-priority lane)"`
	MaxSends        int             `env:"NOTIFIER_MAX_SENDS" envDefault:"4" help:"most SMTP conversations at once"`
	RetryInPlace    time.Duration   `env:"NOTIFIER_RETRY_IN_PLACE" envDefault:"5s" help:"how long a failed e-mail is retried in place before it moves to a retry topic"`
	RetryTiers      []time.Duration `env:"NOTIFIER_RETRY_TIERS" envDefault:"1m,10m" envSeparator:"," help:"delays of the retry topics notifier.retry.1..N; after the last, notifier.dlq"`
	SendLease       time.Duration   `env:"NOTIFIER_SEND_LEASE" envDefault:"2m" help:"how long a claimed e-mail belongs to its sender; a claim left 'sending' longer (a crash between send and mark) is sent again"`
	PauseLag        int64           `env:"NOTIFIER_PAUSE_LAG" envDefault:"1000" help:"pause fetching while the critical groups lag by more than this many records (resume below half); 0 never pauses"`
	CriticalGroups  []string        `env:"NOTIFIER_CRITICAL_GROUPS" envDefault:"order-worker,inventory-sync" envSeparator:"," help:"consumer groups whose lag pauses the notifier and reports lanes"`
	LagInterval     time.Duration   `env:"NOTIFIER_LAG_CHECK_INTERVAL" envDefault:"1s" help:"how often the critical groups' lag is read"`
	MaxPause        time.Duration   `env:"NOTIFIER_MAX_PAUSE" envDefault:"60s" help:"longest pause; then the lanes run for NOTIFIER_MIN_RUN even if the critical lag stays high (a stuck critical group must not stop e-mail altogether)"`
	MinRun          time.Duration   `env:"NOTIFIER_MIN_RUN" envDefault:"10s" help:"how long the lanes run after a pause that reached NOTIFIER_MAX_PAUSE"`
	ShutdownTimeout time.Duration   `env:"NOTIFIER_SHUTDOWN_TIMEOUT" envDefault:"30s" help:"how long shutdown waits for the batch in hand (e-mails being sent) to finish and commit"`
}

// Validate checks the notifier settings.
func (s *Settings) Validate() error {
	switch {
	case s.AdminAddr == "":
		return config.Errorf("NOTIFIER_ADMIN_ADDR", "must not be empty")
	case len(s.Groups) == 0:
		return config.Errorf("NOTIFIER_GROUPS", "want notifier, reports or both")
	case s.StartAt != "earliest" && s.StartAt != "latest":
		return config.Errorf("NOTIFIER_START_AT", "want earliest or latest, got %q", s.StartAt)
	case s.BatchSize < 1 || s.BatchSize > 1000:
		return config.Errorf("NOTIFIER_BATCH_SIZE", "want 1..1000, got %d", s.BatchSize)
	case s.MaxSends < 1 || s.MaxSends > 100:
		return config.Errorf("NOTIFIER_MAX_SENDS", "want 1..100, got %d", s.MaxSends)
	case s.RetryInPlace < 0 || s.RetryInPlace > 15*time.Second:
		return config.Errorf("NOTIFIER_RETRY_IN_PLACE", "want 0..15s (it holds the partition), got %s", s.RetryInPlace)
	case s.SendLease < time.Second:
		return config.Errorf("NOTIFIER_SEND_LEASE", "want at least 1s, got %s", s.SendLease)
	case s.PauseLag < 0:
		return config.Errorf("NOTIFIER_PAUSE_LAG", "want 0 or more, got %d", s.PauseLag)
	case s.LagInterval < 10*time.Millisecond:
		return config.Errorf("NOTIFIER_LAG_CHECK_INTERVAL", "want at least 10ms, got %s", s.LagInterval)
	case s.MaxPause < s.LagInterval:
		return config.Errorf("NOTIFIER_MAX_PAUSE", "want at least NOTIFIER_LAG_CHECK_INTERVAL (%s), got %s", s.LagInterval, s.MaxPause)
	case s.MinRun <= 0:
		return config.Errorf("NOTIFIER_MIN_RUN", "want a positive duration, got %s", s.MinRun)
	case s.ShutdownTimeout <= 0:
		return config.Errorf("NOTIFIER_SHUTDOWN_TIMEOUT", "want a positive duration, got %s", s.ShutdownTimeout)
	}
	for _, g := range s.Groups {
		if !slices.Contains(runnable, g) {
			return config.Errorf("NOTIFIER_GROUPS", "unknown group %q: want notifier, reports or both", g)
		}
	}
	if err := checkTiers("NOTIFIER_RETRY_TIERS", topology.GroupNotifier, s.RetryTiers); err != nil {
		return err
	}
	return nil
}

// runs reports whether the process runs group.
func (s *Settings) runs(group string) bool { return slices.Contains(s.Groups, group) }

func checkTiers(variable, group string, tiers []time.Duration) error {
	for _, g := range topology.Groups() {
		if g.Name == group && len(tiers) != len(g.RetryTiers) {
			return config.Errorf(variable, "want %d tiers (the provisioned retry topics of %s), got %d", len(g.RetryTiers), group, len(tiers))
		}
	}
	for _, d := range tiers {
		if d <= 0 {
			return config.Errorf(variable, "want positive durations, got %s", d)
		}
	}
	return nil
}

// SMTP is the mail server the notifier sends through.
type SMTP struct {
	SMTPHost     string        `env:"SMTP_HOST" envDefault:"127.0.0.1" help:"SMTP server (submission port of a provider, a relay, or the local sink of make run)"`
	SMTPPort     int           `env:"SMTP_PORT" envDefault:"2525" help:"SMTP port (587 for submission with STARTTLS; 2525 is orderctl mailsink's default)"`
	SMTPTLS      string        `env:"SMTP_TLS" envDefault:"opportunistic" help:"STARTTLS: required (refuse to send without it), opportunistic (use it when offered) or off"`
	SMTPUsername string        `env:"SMTP_USERNAME" help:"AUTH PLAIN user; empty sends without authentication"`
	SMTPPassword string        `env:"SMTP_PASSWORD" secret:"true" help:"AUTH PLAIN password"`
	SMTPTimeout  time.Duration `env:"SMTP_TIMEOUT" envDefault:"20s" help:"longest time one e-mail may take: connect, TLS, authentication and the transaction"`
	SMTPHelo     string        `env:"SMTP_HELO_NAME" envDefault:"localhost" help:"name the notifier gives in EHLO"`
	SMTPCAFile   string        `env:"SMTP_TLS_CA_FILE" help:"PEM file of extra CA certificates to trust for STARTTLS (an internal relay); empty uses the system roots"`
}

// Validate checks the SMTP section.
func (s *SMTP) Validate() error {
	switch {
	case s.SMTPHost == "":
		return config.Errorf("SMTP_HOST", "must not be empty")
	case s.SMTPPort < 1 || s.SMTPPort > 65535:
		return config.Errorf("SMTP_PORT", "want 1..65535, got %d", s.SMTPPort)
	case s.SMTPTLS != omail.TLSRequired && s.SMTPTLS != omail.TLSOpportunistic && s.SMTPTLS != omail.TLSOff:
		return config.Errorf("SMTP_TLS", "want required, opportunistic or off, got %q", s.SMTPTLS)
	case s.SMTPUsername != "" && s.SMTPPassword == "":
		return config.Errorf("SMTP_PASSWORD", "must be set with SMTP_USERNAME")
	case s.SMTPUsername != "" && s.SMTPTLS == omail.TLSOff && !isLoopback(s.SMTPHost):
		return config.Errorf("SMTP_TLS", "is off, but SMTP_USERNAME is set: the password would cross the network in clear text (use required)")
	case s.SMTPTimeout < 100*time.Millisecond:
		return config.Errorf("SMTP_TIMEOUT", "want at least 100ms, got %s", s.SMTPTimeout)
	case s.SMTPHelo == "" || strings.ContainsAny(s.SMTPHelo, " \r\n"):
		return config.Errorf("SMTP_HELO_NAME", "want a host name, got %q", s.SMTPHelo)
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Mail is what the e-mails say.
type Mail struct {
	From         string `env:"MAIL_FROM" envDefault:"Auto Parts Shop <orders@shop.example>" help:"sender of every e-mail; its domain is the domain of the Message-IDs"`
	ShopName     string `env:"MAIL_SHOP_NAME" envDefault:"Auto Parts Shop" help:"the shop's name in greetings and signatures"`
	OrderBaseURL string `env:"MAIL_ORDER_BASE_URL" envDefault:"https://shop.example/orders/" help:"link to an order in the e-mails: this followed by the order id"`
}

// Validate checks the mail section.
func (m *Mail) Validate() error {
	if _, err := mail.ParseAddress(m.From); err != nil {
		return config.Errorf("MAIL_FROM", "want an address such as Shop <orders@shop.example>: %v", err)
	}
	if strings.TrimSpace(m.ShopName) == "" {
		return config.Errorf("MAIL_SHOP_NAME", "must not be empty")
	}
	if u, err := url.Parse(m.OrderBaseURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return config.Errorf("MAIL_ORDER_BASE_URL", "want an absolute http(s) URL, got %q", m.OrderBaseURL)
	}
	return nil
}

// ReportSettings are the settings of the reports group and of the daily summary.
type ReportSettings struct {
	StartAt    string          `env:"REPORTS_START_AT" envDefault:"earliest" help:"where a new reports group starts on orders.events: earliest (figures from every retained event) or latest"`
	BatchSize  int             `env:"REPORTS_BATCH_SIZE" envDefault:"200" help:"most records applied in one Postgres transaction"`
	RetryTiers []time.Duration `env:"REPORTS_RETRY_TIERS" envDefault:"1m" envSeparator:"," help:"delays of the retry topics reports.retry.1..N; after the last, reports.dlq"`
	DailyTo    string          `env:"REPORTS_DAILY_TO" help:"ops address of the daily sales summary; empty sends none"`
	DailyAt    string          `env:"REPORTS_DAILY_AT" envDefault:"06:00" help:"local time (HH:MM, REPORTS_TIMEZONE) after which the previous day's summary is sent"`
	Timezone   string          `env:"REPORTS_TIMEZONE" envDefault:"UTC" help:"time zone of the summary's days (IANA name); days start on a UTC hour boundary of that zone"`
	CheckEvery time.Duration   `env:"REPORTS_DAILY_CHECK_INTERVAL" envDefault:"1m" help:"how often the notifier checks whether a daily summary is due"`
}

// Validate checks the reports section.
func (r *ReportSettings) Validate() error {
	if r.StartAt != "earliest" && r.StartAt != "latest" {
		return config.Errorf("REPORTS_START_AT", "want earliest or latest, got %q", r.StartAt)
	}
	if r.BatchSize < 1 || r.BatchSize > 5000 {
		return config.Errorf("REPORTS_BATCH_SIZE", "want 1..5000, got %d", r.BatchSize)
	}
	if err := checkTiers("REPORTS_RETRY_TIERS", topology.GroupReports, r.RetryTiers); err != nil {
		return err
	}
	if r.DailyTo != "" {
		if _, err := mail.ParseAddress(r.DailyTo); err != nil {
			return config.Errorf("REPORTS_DAILY_TO", "want an e-mail address: %v", err)
		}
	}
	if _, err := r.dailyAt(); err != nil {
		return config.Errorf("REPORTS_DAILY_AT", "want HH:MM, got %q", r.DailyAt)
	}
	if _, err := time.LoadLocation(r.Timezone); err != nil {
		return config.Errorf("REPORTS_TIMEZONE", "want an IANA time zone such as Europe/Berlin: %v", err)
	}
	if r.CheckEvery < time.Second {
		return config.Errorf("REPORTS_DAILY_CHECK_INTERVAL", "want at least 1s, got %s", r.CheckEvery)
	}
	return nil
}

// dailyAt is REPORTS_DAILY_AT as an offset from midnight.
func (r *ReportSettings) dailyAt() (time.Duration, error) {
	t, err := time.Parse("15:04", r.DailyAt)
	if err != nil {
		return 0, fmt.Errorf("parse %q: %w", r.DailyAt, err)
	}
	return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute, nil
}
