package notifier_test

import (
	"bytes"
	"fmt"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/consumer"
	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/mailsink"
	"github.com/orderpipe/orderpipe/internal/testenv"
)

// The SMTP server is unreachable while the events arrive: sends fail (connect), records retry in
// place and move to the retry topic; when the server is back every e-mail arrives, once.
func TestSMTPOutageThenEveryEmailArrivesOnce(t *testing.T) {
	t.Parallel()
	s := setup(t, mailsink.Config{})
	proxy := testenv.NewProxy(t, s.sink.Addr())
	s.smtp = proxy.Addr()
	proxy.Cut()
	n := s.notifier(t, map[string]string{"NOTIFIER_GROUPS": "notifier", "NOTIFIER_PAUSE_LAG": "0"})
	var recs []*kgo.Record
	want := map[string]string{}
	for i := range 100 {
		reason := ""
		if i%7 == 0 {
			reason = "payment_declined"
		}
		email := fmt.Sprintf("buyer-%03d@example.com", i)
		id, r := outcome(t, email, reason, skus[i%len(skus)], 1, time.Now().Add(-time.Minute))
		want[id] = email
		recs = append(recs, r)
	}
	s.produce(t, recs...)
	deadline := time.Now().Add(20 * time.Second)
	for len(s.records(t, event.RetryTopic("notifier", 1))) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no record reached notifier.retry.1 during the outage (failures: %v)", testenv.Metric(t, n.URL, "orderpipe_notifier_send_failures_total"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := s.sink.Count(); got != 0 {
		t.Fatalf("%d e-mails delivered during the outage", got)
	}
	if v := testenv.Metric(t, n.URL, `orderpipe_notifier_send_failures_total{class="connect"}`); v < 100 {
		t.Fatalf("connect failures %v, want at least one per e-mail", v)
	}
	proxy.Restore()
	s.waitMessages(t, len(want), 40*time.Second)
	s.waitCommitted(t, "notifier", lanes["notifier"], 30*time.Second)
	msgs := s.sink.Messages()
	if len(msgs) != len(want) {
		t.Fatalf("got %d e-mails, want %d", len(msgs), len(want))
	}
	for _, m := range msgs {
		id := m.Header.Get("X-Orderpipe-Order")
		if want[id] == "" || len(m.To) != 1 || m.To[0] != want[id] {
			t.Fatalf("e-mail about %s to %v, want to %s", id, m.To, want[id])
		}
		delete(want, id)
	}
	if dlq := s.records(t, event.DeadLetterTopic("notifier")); len(dlq) != 0 {
		t.Fatalf("%d records dead-lettered, want none: the outage was shorter than the retries", len(dlq))
	}
}

// What the lanes skip and what they dead-letter: an event type they do not act on is committed
// without effect; a record that is not a valid event, or a recipient the server refuses for
// good, goes to the dead-letter topic at once; a shipped order gets its shipping e-mail; the
// partition keeps flowing.
func TestSkipsOtherEventsAndDeadLettersPoison(t *testing.T) {
	t.Parallel()
	s := setup(t, mailsink.Config{})
	s.sink.RefuseRecipient("gone@example.com")
	n := s.notifier(t, map[string]string{"NOTIFIER_PAUSE_LAG": "0"})
	goodID, good := outcome(t, "ada@example.com", "", skus[0], 2, time.Now())
	_, refused := outcome(t, "gone@example.com", "", skus[1], 1, time.Now())
	shippedID, confirmed := outcome(t, "bob@example.com", "", skus[2], 1, time.Now())
	env, err := event.FromRecord(confirmed)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := event.NewValidator()
	c, err := event.Decode[event.OrderConfirmed](v, env)
	if err != nil {
		t.Fatal(err)
	}
	shipEnv, err := event.NewEnvelope("test", shippedID, time.Now(), event.OrderShipped{OrderID: c.OrderID, CustomerID: c.CustomerID,
		Email: c.Email, Priority: c.Priority, Currency: c.Currency, Lines: c.Lines, SubtotalMinor: c.SubtotalMinor,
		ShippingMinor: c.ShippingMinor, TotalMinor: c.TotalMinor, ShippingAddress: c.ShippingAddress, PlacedAt: c.PlacedAt, ShippedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Validate(shipEnv.Type, shipEnv.Data); err != nil {
		t.Fatal(err)
	}
	other := event.Envelope{ID: "9b0c3a4e-4b1e-4f7e-9c55-2f1f7a1d0c11", Type: "com.orderpipe.order.gift_wrapped", Source: "test", Time: time.Now(), Data: []byte(`{}`)}
	invalid := event.Envelope{ID: event.ID(event.TypeOrderConfirmed, "x"), Type: event.TypeOrderConfirmed, Source: "test", Time: time.Now(), Data: []byte(`{"order_id":"x"}`)}
	// Same key: one partition, in this order.
	key := []byte("one-partition")
	recs := []*kgo.Record{
		{Topic: event.TopicOrderEvents, Key: key, Value: []byte("not an event")},
		invalid.Record(event.TopicOrderEvents, key),
		other.Record(event.TopicOrderEvents, key),
		refused, good, confirmed, shipEnv.Record(event.TopicOrderEvents, key),
	}
	for _, r := range recs {
		r.Key = key
	}
	s.produce(t, recs...)
	s.waitMessages(t, 3, 30*time.Second)
	for g, topics := range lanes {
		s.waitCommitted(t, g, topics, 30*time.Second)
	}
	got := map[string]string{}
	for _, m := range s.sink.Messages() {
		got[m.Header.Get("X-Orderpipe-Kind")+" "+m.Header.Get("X-Orderpipe-Order")] = m.To[0]
	}
	wantMail := map[string]string{
		"order_confirmed " + goodID:    "ada@example.com",
		"order_confirmed " + shippedID: "bob@example.com",
		"order_shipped " + shippedID:   "bob@example.com",
	}
	if fmt.Sprint(got) != fmt.Sprint(wantMail) {
		t.Fatalf("e-mails:\ngot  %v\nwant %v", got, wantMail)
	}
	dead := map[string]int{}
	for _, g := range []string{"notifier", "reports"} {
		for _, r := range s.records(t, event.DeadLetterTopic(g)) {
			d, err := consumer.ParseDeadLetter(r)
			if err != nil {
				t.Fatal(err)
			}
			dead[g+"/"+d.Class]++
		}
	}
	if want := map[string]int{"notifier/permanent": 3, "reports/permanent": 2}; fmt.Sprint(dead) != fmt.Sprint(want) {
		t.Fatalf("dead letters %v, want %v (malformed and invalid in both lanes, the refused recipient in notifier)", dead, want)
	}
	if v := testenv.Metric(t, n.URL, `orderpipe_notifier_events_skipped_total{group="notifier"}`); v != 1 {
		t.Fatalf("notifier skipped %v events, want 1 (the unknown type)", v)
	}
	if v := testenv.Metric(t, n.URL, `orderpipe_notifier_events_skipped_total{group="reports"}`); v != 2 {
		t.Fatalf("reports skipped %v events, want 2 (the unknown type and the shipment)", v)
	}
	if v := testenv.Metric(t, n.URL, `orderpipe_notifier_send_failures_total{class="recipient"}`); v != 1 {
		t.Fatalf("recipient failures %v, want 1", v)
	}
	var state string
	if err := s.pool.QueryRow(t.Context(), `SELECT state FROM notifications WHERE recipient = 'gone@example.com'`).Scan(&state); err != nil || state != "failed" {
		t.Fatalf("refused e-mail's claim: %q %v, want failed (released for a re-drive)", state, err)
	}
}

// The one window, measured: a notifier process killed (SIGKILL) after the SMTP server stored a
// message and before the notifier marked it sent. The killed e-mail is sent again once its lease
// runs out, so the buyer gets a duplicate (same Message-ID) but nothing is lost; every duplicate
// is accounted for in the notifications table's resends.
func TestCrashBetweenSendAndMarkIsMeasured(t *testing.T) {
	t.Parallel()
	s := setup(t, mailsink.Config{})
	bin := testenv.Binary(t, "notifier")
	env := s.env(map[string]string{"NOTIFIER_GROUPS": "notifier", "NOTIFIER_PAUSE_LAG": "0", "NOTIFIER_MAX_SENDS": "4",
		"NOTIFIER_BATCH_SIZE": "10"})
	const total = 60
	var recs []*kgo.Record
	for i := range total {
		_, r := outcome(t, fmt.Sprintf("buyer-%02d@example.com", i), "", skus[i%len(skus)], 1, time.Now())
		recs = append(recs, r)
	}
	s.produce(t, recs...)

	killAt := []int{8, 24, 40} // kill when the sink stores its n-th message
	var (
		mu      sync.Mutex
		current *exec.Cmd
		kills   atomic.Int32
		stored  atomic.Int32
	)
	s.sink.OnMessage(func(mailsink.Message) {
		n := int(stored.Add(1))
		for _, k := range killAt {
			if n == k {
				mu.Lock()
				if current != nil {
					_ = current.Process.Signal(syscall.SIGKILL)
					kills.Add(1)
				}
				mu.Unlock()
			}
		}
	})
	var logs bytes.Buffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("notifier logs:\n%s", logs.String())
		}
	})
	deadline := time.Now().Add(80 * time.Second)
	for {
		cmd := exec.Command(bin)
		for k, v := range env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		current = cmd
		mu.Unlock()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		finished := false
		for !finished {
			select {
			case <-done:
				finished = true
			case <-time.After(100 * time.Millisecond):
			}
			if len(s.byMessageID()) == total {
				break
			}
			if time.Now().After(deadline) {
				_ = cmd.Process.Kill()
				t.Fatalf("%d of %d e-mails after %d kills", len(s.byMessageID()), total, kills.Load())
			}
		}
		if !finished {
			// Every e-mail arrived: let the process commit, then stop it.
			s.waitCommitted(t, "notifier", lanes["notifier"], 30*time.Second)
			_ = cmd.Process.Signal(syscall.SIGTERM)
			<-done
			break
		}
		t.Logf("notifier killed between send and mark (%d so far; %d messages stored)", kills.Load(), stored.Load())
	}
	copies := s.byMessageID()
	dups := 0
	for _, n := range copies {
		dups += n - 1
	}
	var resends, unsent int
	if err := s.pool.QueryRow(t.Context(), `SELECT coalesce(sum(resends), 0), count(*) FILTER (WHERE state <> 'sent') FROM notifications`).Scan(&resends, &unsent); err != nil {
		t.Fatal(err)
	}
	t.Logf("measured: %d kills between send and mark -> %d duplicate e-mails of %d (%d claims taken over after their lease), 0 lost",
		kills.Load(), dups, total, resends)
	if len(copies) != total || unsent != 0 {
		t.Fatalf("%d distinct e-mails of %d, %d not marked sent: an e-mail was lost", len(copies), total, unsent)
	}
	// A kill duplicates at most the e-mails in flight: NOTIFIER_MAX_SENDS (4).
	if int(kills.Load()) != len(killAt) || dups < len(killAt) || dups > 4*len(killAt) || dups > resends {
		t.Fatalf("%d kills, %d duplicates, %d resends: want at least one and at most 4 duplicates per kill, and no duplicate without a resend", kills.Load(), dups, resends)
	}
}
