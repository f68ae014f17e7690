package notifier_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/http"
	"net/mail"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/orderpipe/orderpipe/internal/event"
	omail "github.com/orderpipe/orderpipe/internal/mail"
	"github.com/orderpipe/orderpipe/internal/mailsink"
	"github.com/orderpipe/orderpipe/internal/paysim"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

// textOf returns the decoded text/plain part of a received message.
func textOf(t *testing.T, raw []byte) string {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextRawPart()
		if err != nil {
			t.Fatalf("no text part: %v", err)
		}
		if strings.HasPrefix(p.Header.Get("Content-Type"), "text/plain") {
			b, _ := io.ReadAll(quotedprintable.NewReader(p))
			return string(b)
		}
	}
}

type decided struct {
	status, reason string
	total          int64
	placed         time.Time
}

// decidedOrders reads every order's outcome from Postgres.
func (s *stack) decidedOrders(t *testing.T) map[string]decided {
	t.Helper()
	rows, err := s.pool.Query(t.Context(), `SELECT id::text, status, coalesce(cancel_reason, ''), total_minor, placed_at FROM orders`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]decided{}
	for rows.Next() {
		var id string
		var d decided
		if err := rows.Scan(&id, &d.status, &d.reason, &d.total, &d.placed); err != nil {
			t.Fatal(err)
		}
		out[id] = d
	}
	return out
}

type figures struct {
	Orders          int64            `json:"orders"`
	Units           int64            `json:"units"`
	RevenueMinor    int64            `json:"revenue_minor"`
	CancelledOrders int64            `json:"cancelled_orders"`
	CancelledUnits  int64            `json:"cancelled_units"`
	Cancellations   map[string]int64 `json:"cancellations"`
}

// expectedFigures computes the report independently of the notifier: straight from the orders,
// their lines and the catalog in Postgres.
func (s *stack) expectedFigures(t *testing.T, groupBy string) map[string]figures {
	t.Helper()
	keyExpr := map[string]string{
		"hour":     `to_char(date_trunc('hour', o.placed_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD"T"HH24:00:00"Z"')`,
		"sku":      `l.sku`,
		"category": `p.category`,
	}[groupBy]
	rows, err := s.pool.Query(t.Context(), `
SELECT `+keyExpr+`, o.id::text, o.status, coalesce(o.cancel_reason, ''), sum(l.quantity)::bigint, sum(l.quantity * l.unit_price_minor)::bigint
FROM orders o JOIN order_lines l ON l.order_id = o.id JOIN products p ON p.sku = l.sku
GROUP BY 1, 2, 3, 4`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]figures{}
	for rows.Next() {
		var key, id, status, reason string
		var units, revenue int64
		if err := rows.Scan(&key, &id, &status, &reason, &units, &revenue); err != nil {
			t.Fatal(err)
		}
		f := out[key]
		if f.Cancellations == nil {
			f.Cancellations = map[string]int64{"payment_declined": 0, "out_of_stock": 0, "expired": 0, "invalid": 0}
		}
		if status == "confirmed" {
			f.Orders++
			f.Units += units
			f.RevenueMinor += revenue
		} else {
			f.CancelledOrders++
			f.CancelledUnits += units
			f.Cancellations[reason]++
		}
		out[key] = f
	}
	return out
}

// reportFigures reads the whole sales report through the API, page by page.
func (s *stack) reportFigures(t *testing.T, groupBy string, from, to time.Time) map[string]figures {
	t.Helper()
	out := map[string]figures{}
	cursor := ""
	for page := 0; ; page++ {
		q := url.Values{"group_by": {groupBy}, "from": {from.Format(time.RFC3339)}, "to": {to.Format(time.RFC3339)}, "limit": {"2"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		req, _ := http.NewRequest(http.MethodGet, s.API.URL+"/v1/reports/sales?"+q.Encode(), nil)
		req.Header.Set("Authorization", "Bearer "+s.reports)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("report by %s: %d %s", groupBy, resp.StatusCode, b)
		}
		var body struct {
			Items []struct {
				Key      string `json:"key"`
				Currency string `json:"currency"`
				figures
			} `json:"items"`
			NextCursor string `json:"next_cursor"`
		}
		if err := json.Unmarshal(b, &body); err != nil {
			t.Fatal(err)
		}
		for _, it := range body.Items {
			if it.Currency != "EUR" {
				t.Fatalf("row %s in %s, want EUR", it.Key, it.Currency)
			}
			if _, dup := out[it.Key]; dup {
				t.Fatalf("row %s on two pages", it.Key)
			}
			out[it.Key] = it.figures
		}
		if body.NextCursor == "" {
			return out
		}
		cursor = body.NextCursor
	}
}

// aggregatesChecksum fingerprints every sales figure.
func (s *stack) aggregatesChecksum(t *testing.T) string {
	t.Helper()
	var v string
	if err := s.pool.QueryRow(t.Context(), `
SELECT md5(coalesce(string_agg(concat_ws(':', dim, hour, key, currency, orders, units, revenue_minor, cancelled_orders, cancelled_units,
    cancelled_payment_declined, cancelled_out_of_stock, cancelled_expired, cancelled_invalid), ',' ORDER BY dim, hour, key, currency), ''))
FROM sales_aggregates`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func (s *stack) waitMessages(t *testing.T, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for s.sink.Count() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d e-mails received after %s", s.sink.Count(), n, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var lanes = map[string][]string{
	"notifier": {event.TopicOrderEvents, event.RetryTopic("notifier", 1), event.RetryTopic("notifier", 2)},
	"reports":  {event.TopicOrderEvents, event.RetryTopic("reports", 1)},
}

// 1,000 orders through the api, order-worker and the notifier: exactly one confirmation or
// cancellation e-mail per order, to the buyer's address, with the order's kind, id and total;
// the sales report matches figures computed from the orders themselves. Then orders.events is
// replayed from the start into both groups: no new e-mail, no figure changes.
func TestThousandOrdersOneEmailEachAndReplayChangesNothing(t *testing.T) {
	t.Parallel()
	s := setupPipeline(t, mailsink.Config{}, paysim.Config{Latency: 2 * time.Millisecond, DeclineRate: 0.1, Seed: 7},
		map[string]int64{"BRK-PAD-1001": 2000, "FLT-OIL-2001": 2000, "BAT-5001": 2000, "WIP-6001": 2000, "TYR-WIN-7101": 2000})
	s.worker(t, nil)
	n := s.notifier(t, nil)
	start := time.Now().UTC()
	rng := rand.New(rand.NewPCG(1, 2))
	bodies := make([][]byte, 1000)
	for i := range bodies {
		prio := []string{"standard", "standard", "standard", "express"}[i%4]
		token := fmt.Sprintf("tok_visa_%d", i)
		if i%40 == 0 {
			token = fmt.Sprintf("tok_decline_%d", i)
		}
		a, b := skus[rng.IntN(len(skus))], skus[rng.IntN(len(skus))]
		email := fmt.Sprintf("buyer-%04d@example.com", i)
		if a == b {
			bodies[i] = orderJSON(email, token, prio, a, 1+rng.IntN(3))
		} else {
			bodies[i] = orderJSON(email, token, prio, a, 1, b, 2)
		}
	}
	accepted := s.placeMany(t, len(bodies), 32, func(i int) []byte { return bodies[i] })
	if len(accepted) != len(bodies) {
		t.Fatalf("%d of %d orders accepted, want all (stock is ample)", len(accepted), len(bodies))
	}
	s.WaitDecided(t, len(accepted), 90*time.Second)
	s.waitMessages(t, len(accepted), 60*time.Second)
	for g, topics := range lanes {
		s.waitCommitted(t, g, topics, 30*time.Second)
	}

	orders := s.decidedOrders(t)
	msgs := s.sink.Messages()
	if len(msgs) != len(accepted) {
		t.Fatalf("got %d e-mails, want %d (one per order)", len(msgs), len(accepted))
	}
	seen := map[string]bool{}
	kinds := map[string]int{}
	for _, m := range msgs {
		id := m.Header.Get("X-Orderpipe-Order")
		kind := m.Header.Get("X-Orderpipe-Kind")
		if seen[id] {
			t.Fatalf("order %s got a second e-mail (%s)", id, m.Subject)
		}
		seen[id] = true
		kinds[kind]++
		o, ok := orders[id]
		if !ok {
			t.Fatalf("e-mail about unknown order %q", id)
		}
		if want := "order_" + o.status; kind != want {
			t.Errorf("order %s is %s but got a %s e-mail", id, o.status, kind)
		}
		if len(m.To) != 1 || m.To[0] != accepted[id] {
			t.Errorf("order %s: e-mail to %v, want %s", id, m.To, accepted[id])
		}
		if want := "<" + kind + "." + id + "@shop.example>"; m.MessageID != want {
			t.Errorf("Message-ID %s, want %s", m.MessageID, want)
		}
		text := textOf(t, m.Raw)
		for _, want := range []string{id, omail.Money(o.total, "EUR"), "https://shop.example/orders/" + id} {
			if !strings.Contains(text, want) {
				t.Errorf("order %s e-mail lacks %q:\n%s", id, want, text)
			}
		}
		if o.status == "cancelled" && !strings.Contains(text, omail.CancelReason(o.reason).Explanation) {
			t.Errorf("order %s cancelled (%s): e-mail does not explain it:\n%s", id, o.reason, text)
		}
	}
	t.Logf("%d orders, %d e-mails: %v", len(accepted), len(msgs), kinds)
	if kinds["order_cancelled"] < 25 || kinds["order_confirmed"] < 800 {
		t.Fatalf("e-mails by kind %v: want the forced declines cancelled and most confirmed", kinds)
	}

	// The report against figures computed from the orders themselves.
	from, to := start.Truncate(time.Hour), time.Now().UTC().Add(time.Hour)
	for _, by := range []string{"hour", "sku", "category"} {
		want, got := s.expectedFigures(t, by), s.reportFigures(t, by, from, to)
		if len(want) == 0 {
			t.Fatalf("no orders to report by %s", by)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("report by %s:\ngot  %v\nwant %v", by, got, want)
		}
	}

	// Replay orders.events from the start into both groups.
	before, sums := s.sink.Count(), s.aggregatesChecksum(t)
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	s.resetGroup(t, "notifier", event.TopicOrderEvents)
	s.resetGroup(t, "reports", event.TopicOrderEvents)
	n = s.notifier(t, nil)
	deadline := time.Now().Add(60 * time.Second)
	for testenv.Metric(t, n.URL, "orderpipe_notifier_duplicates_suppressed_total") < float64(len(accepted)) ||
		testenv.Metric(t, n.URL, `orderpipe_reports_events_total{outcome="duplicate"}`) < float64(len(accepted)) {
		if time.Now().After(deadline) {
			t.Fatalf("replay not done: %v duplicates suppressed, %v report duplicates, want %d each",
				testenv.Metric(t, n.URL, "orderpipe_notifier_duplicates_suppressed_total"), testenv.Metric(t, n.URL, `orderpipe_reports_events_total{outcome="duplicate"}`), len(accepted))
		}
		time.Sleep(100 * time.Millisecond)
	}
	for g, topics := range lanes {
		s.waitCommitted(t, g, topics, 30*time.Second)
	}
	if got := s.sink.Count(); got != before {
		t.Fatalf("replay sent %d e-mails, want none", got-before)
	}
	if got := s.aggregatesChecksum(t); got != sums {
		t.Fatalf("replay changed the sales figures")
	}
	t.Logf("replay: %v e-mails suppressed as duplicates, %v report events recognised, 0 sent, figures unchanged",
		testenv.Metric(t, n.URL, "orderpipe_notifier_duplicates_suppressed_total"), testenv.Metric(t, n.URL, `orderpipe_reports_events_total{outcome="duplicate"}`))
	if v := testenv.Metric(t, n.URL, "orderpipe_notifier_emails_sent_total"); v != 0 {
		t.Fatalf("replay: emails_sent_total %v, want 0", v)
	}
}
