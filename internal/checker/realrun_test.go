package checker_test

import (
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orderpipe/orderpipe/internal/checker"
	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/loadgen"
	"github.com/orderpipe/orderpipe/internal/mailsink"
	"github.com/orderpipe/orderpipe/internal/notifier"
	"github.com/orderpipe/orderpipe/internal/paysim"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

const realScenario = `
name: real
seed: 5
catalog:
  hot: [{sku: LG-HOT-1, stock: 10}, {sku: LG-HOT-2, stock: 10}]
  background: {count: 8, stock: 15}
arrival:
  - {phase: ramp, from: 20, to: 80, for: 2s}
  - {phase: hold, rate: 80, for: 1s}
mix: {hot_share: 0.6, zipf_s: 1.3, express_share: 0.2, max_lines: 2, max_qty: 2}
payment: {decline: 0.05, slow: 0.05}
duplicates: 0.1
retry: {statuses: [429, 503], max: 3, backoff: 100ms}
request_timeout: 30s
`

// A real sale through the api, the order-worker and the notifier, against the payment simulator
// and the mail sink, settles with every invariant holding: the checker reports no false alarm on
// the real pipeline, and its counts match the run.
func TestRealRunHolds(t *testing.T) {
	t.Parallel()
	s, p, mailURL := realPipeline(t, realScenario)
	res, err := loadgen.Run(t.Context(), s, loadgen.Target{BaseURL: p.API.URL, Token: p.Token}, loadgen.Options{})
	if err != nil {
		t.Fatal(err)
	}
	accepted := acceptedIDs(res)
	r := settleAndCheck(t, p, mailURL, res)
	if !r.OK() {
		t.Fatalf("a clean run reports broken invariants:\n%s", r.Markdown())
	}
	sm := r.Summary
	if sm["accepted_orders"] != int64(len(accepted)) || sm["orders_confirmed"]+sm["orders_cancelled"] != int64(len(accepted)) {
		t.Errorf("accepted %d, confirmed %d + cancelled %d; want %d decided", sm["accepted_orders"], sm["orders_confirmed"], sm["orders_cancelled"], len(accepted))
	}
	if sm["orders_confirmed"] == 0 || sm["captures"] != sm["orders_confirmed"] || sm["emails_order_confirmed"] != sm["orders_confirmed"] || sm["emails_order_cancelled"] != sm["orders_cancelled"] {
		t.Errorf("confirmed %d, captures %d, confirmation e-mails %d, cancelled %d, cancellation e-mails %d: want one capture and one e-mail per decision",
			sm["orders_confirmed"], sm["captures"], sm["emails_order_confirmed"], sm["orders_cancelled"], sm["emails_order_cancelled"])
	}
	if sm["holds_outstanding"] != 0 || sm["orderplaced_records"] != int64(len(accepted)) {
		t.Errorf("holds outstanding %d, OrderPlaced records %d (want 0 and %d)", sm["holds_outstanding"], sm["orderplaced_records"], len(accepted))
	}
	t.Logf("real run:\n%s", r.Markdown())
}

// realPipeline starts the api, an order-worker, the notifier, the payment simulator and a mail
// sink with the catalog and stock of the scenario in yaml.
func realPipeline(t *testing.T, yaml string) (*loadgen.Scenario, *testenv.Pipeline, string) {
	t.Helper()
	s, err := loadgen.ParseScenario([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	var products []postgres.Product
	for _, p := range s.Products() {
		products = append(products, p.Product)
	}
	p := testenv.NewPipeline(t, testenv.PipelineOptions{Products: products, Stock: s.Stock(),
		Payment: paysim.Config{Latency: 5 * time.Millisecond}})
	sink, err := mailsink.Start(mailsink.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sink.Close() })
	mailHTTP := httptest.NewServer(sink.Handler())
	t.Cleanup(mailHTTP.Close)
	host, port, _ := net.SplitHostPort(sink.Addr())
	p.Worker(t, nil)
	testenv.Start(t, "notifier", notifier.Run, p.Env(map[string]string{"NOTIFIER_ADMIN_ADDR": "127.0.0.1:0",
		"SMTP_HOST": host, "SMTP_PORT": port, "SMTP_TLS": "off", "SMTP_TIMEOUT": "5s", "NOTIFIER_LAG_CHECK_INTERVAL": "100ms"}))
	return s, p, mailHTTP.URL
}

func acceptedIDs(res *loadgen.Result) map[string]bool {
	accepted := map[string]bool{}
	for _, o := range res.Outcomes {
		if o.Class == loadgen.ClassAccepted {
			accepted[o.OrderID] = true
		}
	}
	return accepted
}

// settleAndCheck waits until the worker and the notifier have committed everything, then checks.
func settleAndCheck(t *testing.T, p *testenv.Pipeline, mailURL string, res *loadgen.Result) *checker.Report {
	t.Helper()
	p.WaitSettled(t, "order-worker", testenv.OrderWorkerTopics(), 60*time.Second)
	testenv.WaitCommitted(t, p.Kafka, "notifier", []string{event.TopicOrderEvents}, 60*time.Second)
	r, err := checker.Check(t.Context(), checker.Sources{Pool: p.Pool, Redis: p.RDB, Prefix: p.Prefix,
		Brokers: p.Kafka.ListenAddrs(), PaymentURL: p.SimURL, MailURL: mailURL, Result: res})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Buyers whose connection is cut never learn their answer ("unknown"); the checker finds each
// such buyer's order once or not at all, and every invariant still holds.
func TestRealRunWithLostAnswers(t *testing.T) {
	t.Parallel()
	s, p, mailURL := realPipeline(t, strings.Replace(realScenario, "for: 1s}", "for: 4s}", 1))
	proxy := testenv.NewProxy(t, strings.TrimPrefix(p.API.URL, "http://"))
	// Cut the network between buyers and api one second in, until a second with unknown
	// answers has been sampled.
	seen := make(chan struct{})
	var once sync.Once
	go func() {
		select {
		case <-time.After(time.Second):
			proxy.Cut()
		case <-t.Context().Done():
			return
		}
		select {
		case <-seen:
		case <-t.Context().Done():
		}
		proxy.Restore()
	}()
	res, err := loadgen.Run(t.Context(), s, loadgen.Target{BaseURL: "http://" + proxy.Addr(), Token: p.Token},
		loadgen.Options{OnSample: func(sm loadgen.Sample) {
			if sm.Unknown > 0 {
				once.Do(func() { close(seen) })
			}
		}})
	once.Do(func() { close(seen) })
	if err != nil {
		t.Fatal(err)
	}
	unknownOnly := 0
	byBuyer := map[int][]loadgen.Outcome{}
	for _, o := range res.Outcomes {
		byBuyer[o.Buyer] = append(byBuyer[o.Buyer], o)
	}
	for _, os := range byBuyer {
		unknown, accepted := false, false
		for _, o := range os {
			unknown = unknown || o.Class == loadgen.ClassUnknown
			accepted = accepted || o.Class == loadgen.ClassAccepted
		}
		if unknown && !accepted {
			unknownOnly++
		}
	}
	if unknownOnly == 0 {
		t.Fatalf("no buyer was left with an unknown answer; outcomes: %v", res.Reasons(loadgen.ClassUnknown))
	}
	// Orders of buyers who never learned their answer are decided too: wait for every order
	// row the worker will write (accepted ones plus the unknown ones that reached the api).
	p.WaitDecided(t, len(acceptedIDs(res)), 60*time.Second)
	r := settleAndCheck(t, p, mailURL, res)
	if !r.OK() {
		t.Fatalf("invariants broken after lost answers:\n%s", r.Markdown())
	}
	if got := r.Summary["unknown_answer_order_exists"] + r.Summary["unknown_answer_no_order"]; got != int64(unknownOnly) {
		t.Errorf("checker accounts for %d buyers with unknown answers, want %d", got, unknownOnly)
	}
	t.Logf("%d buyers never learned their answer: %d have an order, %d have none", unknownOnly,
		r.Summary["unknown_answer_order_exists"], r.Summary["unknown_answer_no_order"])
}
