package postgres_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/orderpipe/orderpipe/internal/postgres"
)

func claimOf(kind, subject string) postgres.NotificationClaim {
	return postgres.NotificationClaim{
		NotificationKey: postgres.NotificationKey{Kind: kind, Subject: subject},
		Recipient:       "buyer@example.com", MessageID: "<" + kind + "." + subject + "@shop.example>",
	}
}

// One e-mail through its life: claimed, busy while leased, sent, then suppressed; a failed
// attempt is retried at once; a claim left sending past its lease is taken over as a resend.
func TestNotificationClaimLifecycle(t *testing.T) {
	t.Parallel()
	b := setup(t)
	store := postgres.NewNotificationStore(b.pool)
	ctx := t.Context()
	now := time.Now()
	lease := time.Minute
	outcome := func(at time.Time, c postgres.NotificationClaim) postgres.ClaimResult {
		t.Helper()
		rs, err := store.Claim(ctx, []postgres.NotificationClaim{c}, lease, at)
		if err != nil {
			t.Fatal(err)
		}
		return rs[0]
	}
	a := claimOf("order_confirmed", "o-1")
	steps := []struct {
		name string
		at   time.Time
		do   func()
		want string
	}{
		{"first claim", now, nil, postgres.ClaimNew},
		{"while leased", now.Add(time.Second), nil, postgres.ClaimBusy},
		{"after a failure", now.Add(2 * time.Second), func() {
			if err := store.MarkFailed(ctx, a.NotificationKey, "connection refused"); err != nil {
				t.Fatal(err)
			}
		}, postgres.ClaimRetry},
		{"after the lease ran out", now.Add(2*time.Second + lease), nil, postgres.ClaimResend},
		{"after it was sent", now.Add(3*time.Second + lease), func() {
			ok, err := store.MarkSent(ctx, a.NotificationKey, now)
			if err != nil || !ok {
				t.Fatalf("mark sent: got %v %v, want true nil", ok, err)
			}
		}, postgres.ClaimSent},
		{"much later", now.Add(time.Hour), nil, postgres.ClaimSent},
	}
	for _, s := range steps {
		if s.do != nil {
			s.do()
		}
		if got := outcome(s.at, a); got.Outcome != s.want {
			t.Fatalf("%s: got %s, want %s", s.name, got.Outcome, s.want)
		}
	}
	n, found, err := store.Notification(ctx, a.NotificationKey)
	if err != nil || !found {
		t.Fatalf("read: %v %v", found, err)
	}
	if n.State != postgres.NotificationSent || n.Attempts != 3 || n.Resends != 1 || n.SentAt == nil {
		t.Fatalf("row %+v: want sent after 3 attempts with 1 resend", n)
	}
	// Marking a row that is not sending changes nothing.
	if ok, err := store.MarkSent(ctx, a.NotificationKey, now); err != nil || ok {
		t.Fatalf("second mark: got %v %v, want false nil", ok, err)
	}
}

// Eight claimers race for the same 100 e-mails (each also listing one twice): every e-mail is
// owned by exactly one of them.
func TestNotificationClaimIsExclusive(t *testing.T) {
	t.Parallel()
	b := setup(t)
	store := postgres.NewNotificationStore(b.pool)
	var claims []postgres.NotificationClaim
	for i := range 100 {
		claims = append(claims, claimOf("order_confirmed", fmt.Sprintf("o-%03d", i)))
	}
	claims = append(claims, claims[7])
	var mu sync.Mutex
	owners := map[string]int{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			rs, err := store.Claim(t.Context(), claims, time.Minute, time.Now())
			if err != nil {
				t.Errorf("claim: %v", err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, r := range rs {
				if r.Send() {
					owners[r.Subject]++
				}
			}
		})
	}
	wg.Wait()
	if len(owners) != 100 {
		t.Fatalf("got %d e-mails owned, want 100", len(owners))
	}
	for s, n := range owners {
		if n != 1 {
			t.Fatalf("%s owned %d times, want once", s, n)
		}
	}
}
