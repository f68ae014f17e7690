package notifier

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/orderpipe/orderpipe/internal/mail"
)

// metrics of the notifier process. Label values are bounded: kind is one of the mail kinds,
// class one of the mail failure classes, outcome applied or duplicate.
type metrics struct {
	sent        *prometheus.CounterVec
	duplicates  *prometheus.CounterVec
	resends     *prometheus.CounterVec
	sendSeconds *prometheus.HistogramVec
	failures    *prometheus.CounterVec
	skipped     *prometheus.CounterVec

	paused      prometheus.Gauge
	pauses      prometheus.Counter
	criticalLag prometheus.Gauge

	reportEvents  *prometheus.CounterVec
	reportLag     prometheus.Histogram
	reportNewest  prometheus.Gauge
	summariesSent prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		sent: f.NewCounterVec(prometheus.CounterOpts{
			Name: "orderpipe_notifier_emails_sent_total",
			Help: "E-mails the SMTP server accepted, by kind.",
		}, []string{"kind"}),
		duplicates: f.NewCounterVec(prometheus.CounterOpts{
			Name: "orderpipe_notifier_duplicates_suppressed_total",
			Help: "E-mails not sent because they had been sent already (redelivery or replay), by kind.",
		}, []string{"kind"}),
		resends: f.NewCounterVec(prometheus.CounterOpts{
			Name: "orderpipe_notifier_resends_total",
			Help: "E-mails sent again because an earlier sender left them 'sending' past the lease (a crash between send and mark): each is a possible duplicate.",
		}, []string{"kind"}),
		sendSeconds: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "orderpipe_notifier_send_duration_seconds",
			Help:    "Time of one SMTP send (connect to accepted), successful or not, by kind.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"kind"}),
		failures: f.NewCounterVec(prometheus.CounterOpts{
			Name: "orderpipe_notifier_send_failures_total",
			Help: "Failed SMTP sends by class: connect, tls, auth, recipient, rejected, timeout, network, message.",
		}, []string{"class"}),
		skipped: f.NewCounterVec(prometheus.CounterOpts{
			Name: "orderpipe_notifier_events_skipped_total",
			Help: "Records of orders.events a group does not act on (other event types), committed without effect, by group.",
		}, []string{"group"}),
		paused: f.NewGauge(prometheus.GaugeOpts{
			Name: "orderpipe_notifier_paused",
			Help: "1 while the notifier and reports lanes stop fetching because the critical groups lag.",
		}),
		pauses: f.NewCounter(prometheus.CounterOpts{
			Name: "orderpipe_notifier_pauses_total",
			Help: "Times the low-priority lanes paused for the critical groups' lag.",
		}),
		criticalLag: f.NewGauge(prometheus.GaugeOpts{
			Name: "orderpipe_notifier_critical_lag_records",
			Help: "Total lag of the critical consumer groups, as last read by the notifier's pause gate.",
		}),
		reportEvents: f.NewCounterVec(prometheus.CounterOpts{
			Name: "orderpipe_reports_events_total",
			Help: "Order outcome events seen by the reports group: applied (counted now) or duplicate (counted before).",
		}, []string{"outcome"}),
		reportLag: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "orderpipe_reports_lag_seconds",
			Help:    "Time from an order outcome event to its figures being in the sales aggregates.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600},
		}),
		reportNewest: f.NewGauge(prometheus.GaugeOpts{
			Name: "orderpipe_reports_newest_event_timestamp_seconds",
			Help: "Time of the newest event counted in the sales aggregates (report freshness: time() minus this).",
		}),
		summariesSent: f.NewCounter(prometheus.CounterOpts{
			Name: "orderpipe_reports_daily_summaries_sent_total",
			Help: "Daily sales summaries sent to the ops address.",
		}),
	}
	// The counters alerts and panels read exist at 0 from the start for every known label value:
	// increase() and rate() see nothing of a series until its second sample.
	for _, class := range []string{mail.ClassConnect, mail.ClassTLS, mail.ClassAuth, mail.ClassRecipient, mail.ClassRejected,
		mail.ClassTimeout, mail.ClassNetwork, mail.ClassMessage} {
		m.failures.WithLabelValues(class)
	}
	for _, kind := range []string{mail.KindOrderConfirmed, mail.KindOrderCancelled, mail.KindOrderShipped, mail.KindDailySummary} {
		m.sent.WithLabelValues(kind)
	}
	return m
}
