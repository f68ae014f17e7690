package notifier

import (
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	omail "github.com/orderpipe/orderpipe/internal/mail"
	"github.com/orderpipe/orderpipe/internal/mailsink"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

// Two notifier instances check at the same moment: the day's summary goes out once, with the
// day's figures in the configured zone; later checks the same day send nothing.
func TestDailySummaryOncePerDay(t *testing.T) {
	t.Parallel()
	pool, _ := testenv.Postgres(t)
	ctx := t.Context()
	sink, err := mailsink.Start(mailsink.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sink.Close() })
	host, port, _ := net.SplitHostPort(sink.Addr())
	p, _ := strconv.Atoi(port)
	sender := omail.NewSMTP(omail.SMTPConfig{Host: host, Port: p, TLS: omail.TLSOff, Timeout: 5 * time.Second})
	r, err := omail.NewRenderer(omail.Shop{Name: "Auto Parts Shop", From: "orders@shop.example", OrderBaseURL: "https://shop.example/orders/"})
	if err != nil {
		t.Fatal(err)
	}
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	sales := postgres.NewReportStore(pool)
	day := time.Date(2025, 11, 2, 0, 0, 0, 0, berlin)
	fact := func(at time.Time, confirmed bool, qty int) postgres.SaleFact {
		f := postgres.SaleFact{EventID: uuid.NewString(), PlacedAt: at, Currency: "EUR", Confirmed: confirmed,
			Lines: []postgres.SaleLine{{SKU: "BRK-1", Quantity: qty, LineTotalMinor: int64(qty) * 2500}}}
		if !confirmed {
			f.Reason = "payment_declined"
		}
		return f
	}
	if _, err := sales.Apply(ctx, "reports", []postgres.SaleFact{
		fact(day.Add(30*time.Minute), true, 2),           // 00:30 Berlin = 23:30 UTC the day before: in the day
		fact(day.Add(15*time.Hour), true, 1),             // afternoon
		fact(day.Add(16*time.Hour), false, 4),            // declined
		fact(day.Add(24*time.Hour+time.Minute), true, 9), // the next day
		fact(day.Add(-time.Hour), true, 7),               // the day before
	}); err != nil {
		t.Fatal(err)
	}
	claims := postgres.NewNotificationStore(pool)
	m := newMetrics(prometheus.NewRegistry())
	newSummary := func() *Summary {
		return newSummary(claims, sales, sender, r, "ops@shop.example", berlin, 6*time.Hour, time.Minute, slog.New(slog.DiscardHandler), m)
	}
	a, b := newSummary(), newSummary()
	now := time.Date(2025, 11, 3, 7, 0, 0, 0, berlin)
	if got := a.Due(now).Format(time.DateOnly); got != "2025-11-02" {
		t.Fatalf("due at %s: %s, want 2025-11-02", now, got)
	}
	if got := a.Due(now.Add(-2 * time.Hour)).Format(time.DateOnly); got != "2025-11-01" {
		t.Fatalf("due before 06:00: %s, want 2025-11-01", got)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	sent := 0
	for _, s := range []*Summary{a, b, a, b} {
		wg.Go(func() {
			ok, err := s.Tick(ctx, now)
			if err != nil {
				t.Errorf("tick: %v", err)
			}
			if ok {
				mu.Lock()
				sent++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if sent != 1 || sink.Count() != 1 {
		t.Fatalf("%d ticks sent, the server got %d e-mails; want exactly 1", sent, sink.Count())
	}
	if ok, err := b.Tick(ctx, now.Add(10*time.Hour)); ok || err != nil {
		t.Fatalf("a later check the same day: sent=%v err=%v, want nothing", ok, err)
	}
	msg := sink.Messages()[0]
	if msg.To[0] != "ops@shop.example" || msg.MessageID != "<daily_summary.2025-11-02@shop.example>" {
		t.Fatalf("summary to %v id %s", msg.To, msg.MessageID)
	}
	raw := string(msg.Raw)
	for _, want := range []string{"Confirmed orders: 2", "Units sold:       3", "=E2=82=AC75.00", "Cancelled orders: 1", "payment_declined: 1"} {
		if !strings.Contains(raw, want) {
			t.Errorf("summary lacks %q:\n%s", want, raw)
		}
	}
	// The next day's summary is a new e-mail.
	if ok, err := a.Tick(ctx, now.Add(24*time.Hour)); !ok || err != nil || sink.Count() != 2 {
		t.Fatalf("next day: sent=%v err=%v count=%d, want a second e-mail", ok, err, sink.Count())
	}
}
