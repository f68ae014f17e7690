package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Notification states.
const (
	NotificationSending = "sending" // claimed; the e-mail is being sent (or the sender died)
	NotificationSent    = "sent"    // the SMTP server accepted it
	NotificationFailed  = "failed"  // the last attempt failed before the server accepted it
)

// Outcomes of a claim.
const (
	// ClaimNew: nobody had claimed this e-mail; the caller sends it.
	ClaimNew = "new"
	// ClaimRetry: an earlier attempt failed before the server accepted the message; the caller
	// sends it again (no duplicate possible).
	ClaimRetry = "retry"
	// ClaimResend: an earlier claimer left the e-mail "sending" and its lease ran out (it crashed
	// between send and mark, or the mark failed); the caller sends it again, and the buyer may
	// receive it twice. This is the documented window.
	ClaimResend = "resend"
	// ClaimSent: the e-mail went out already; the caller sends nothing (duplicate suppressed).
	ClaimSent = "sent"
	// ClaimBusy: another claimer holds a live lease on it; the caller retries later.
	ClaimBusy = "busy"
)

// NotificationKey names one e-mail: its kind (order_confirmed, daily_summary...) and subject
// (an order id, a date).
type NotificationKey struct {
	Kind    string
	Subject string
}

// NotificationClaim is an e-mail a caller wants to send.
type NotificationClaim struct {
	NotificationKey
	Recipient string
	MessageID string
	EventID   string // the event that asked for it, for tracing; may be empty
}

// ClaimResult says what the caller may do with a claimed e-mail.
type ClaimResult struct {
	NotificationKey
	Outcome  string // ClaimNew, ClaimRetry, ClaimResend, ClaimSent or ClaimBusy
	Attempts int    // attempts so far, this one included (0 for sent and busy)
}

// Send reports whether the caller now owns the e-mail and must send it.
func (r ClaimResult) Send() bool {
	return r.Outcome == ClaimNew || r.Outcome == ClaimRetry || r.Outcome == ClaimResend
}

// Notification is one stored notification row.
type Notification struct {
	NotificationKey
	Recipient  string
	MessageID  string
	EventID    string
	State      string
	Attempts   int
	Resends    int
	LeaseUntil *time.Time
	LastError  string
	ClaimedAt  time.Time
	SentAt     *time.Time
}

// NotificationStore records which e-mails were claimed and sent, so each goes out once.
type NotificationStore struct {
	pool *pgxpool.Pool
}

// NewNotificationStore returns a NotificationStore over pool.
func NewNotificationStore(pool *pgxpool.Pool) *NotificationStore {
	return &NotificationStore{pool: pool}
}

// Claim tries to take ownership of each e-mail for lease, in one transaction. An e-mail nobody
// claimed is inserted as sending (INSERT ... ON CONFLICT DO NOTHING: of two concurrent claimers
// exactly one inserts it). An existing row is taken over when its last attempt failed, or when it
// is still sending but its lease ran out (ClaimResend); a sent row answers ClaimSent and a live
// lease ClaimBusy. Results are in the order of claims; a key given twice is answered ClaimBusy the
// second time.
func (s *NotificationStore) Claim(ctx context.Context, claims []NotificationClaim, lease time.Duration, now time.Time) ([]ClaimResult, error) {
	if len(claims) == 0 {
		return nil, nil
	}
	now = now.UTC()
	until := now.Add(lease)
	// Existing rows are locked in key order, so concurrent claimers never deadlock.
	keys := make([]NotificationKey, 0, len(claims))
	seen := make(map[NotificationKey]bool, len(claims))
	for _, c := range claims {
		if !seen[c.NotificationKey] {
			seen[c.NotificationKey] = true
			keys = append(keys, c.NotificationKey)
		}
	}
	slices.SortFunc(keys, func(a, b NotificationKey) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Subject, b.Subject))
	})
	kinds, subjects := make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		kinds[i], subjects[i] = k.Kind, k.Subject
	}
	decided := make(map[NotificationKey]ClaimResult, len(keys))
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
SELECT n.kind, n.subject, n.state, n.lease_until, n.attempts
FROM notifications n
JOIN unnest($1::text[], $2::text[]) AS k(kind, subject) ON n.kind = k.kind AND n.subject = k.subject
ORDER BY n.kind, n.subject
FOR UPDATE OF n`, kinds, subjects)
		if err != nil {
			return fmt.Errorf("lock notifications: %w", err)
		}
		existing := map[NotificationKey]bool{}
		var takeKinds, takeSubjects, takeStates []string
		for rows.Next() {
			var k NotificationKey
			var state string
			var leaseUntil *time.Time
			var attempts int
			if err := rows.Scan(&k.Kind, &k.Subject, &state, &leaseUntil, &attempts); err != nil {
				rows.Close()
				return fmt.Errorf("scan notification: %w", err)
			}
			existing[k] = true
			r := ClaimResult{NotificationKey: k}
			switch {
			case state == NotificationSent:
				r.Outcome = ClaimSent
			case state == NotificationFailed:
				r.Outcome, r.Attempts = ClaimRetry, attempts+1
			case leaseUntil == nil || !leaseUntil.After(now):
				r.Outcome, r.Attempts = ClaimResend, attempts+1
			default:
				r.Outcome = ClaimBusy
			}
			if r.Send() {
				takeKinds, takeSubjects, takeStates = append(takeKinds, k.Kind), append(takeSubjects, k.Subject), append(takeStates, state)
			}
			decided[k] = r
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("lock notifications: %w", err)
		}
		if len(takeKinds) > 0 {
			if _, err := tx.Exec(ctx, `
UPDATE notifications n
SET state = 'sending', attempts = n.attempts + 1, lease_until = $4, claimed_at = $3, last_error = NULL,
    resends = n.resends + CASE WHEN t.state = 'sending' THEN 1 ELSE 0 END
FROM unnest($1::text[], $2::text[], $5::text[]) AS t(kind, subject, state)
WHERE n.kind = t.kind AND n.subject = t.subject`, takeKinds, takeSubjects, now, until, takeStates); err != nil {
				return fmt.Errorf("take over notifications: %w", err)
			}
		}
		var insKinds, insSubjects, insRecipients, insMessageIDs, insEventIDs []string
		for _, c := range claims {
			if existing[c.NotificationKey] {
				continue
			}
			if _, ok := decided[c.NotificationKey]; ok {
				continue
			}
			decided[c.NotificationKey] = ClaimResult{NotificationKey: c.NotificationKey, Outcome: ClaimBusy} // unless inserted below
			insKinds, insSubjects = append(insKinds, c.Kind), append(insSubjects, c.Subject)
			insRecipients, insMessageIDs, insEventIDs = append(insRecipients, c.Recipient), append(insMessageIDs, c.MessageID), append(insEventIDs, c.EventID)
		}
		if len(insKinds) == 0 {
			return nil
		}
		rows, err = tx.Query(ctx, `
INSERT INTO notifications (kind, subject, recipient, message_id, event_id, state, attempts, lease_until, claimed_at)
SELECT kind, subject, recipient, message_id, event_id, 'sending', 1, $7, $6
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS t(kind, subject, recipient, message_id, event_id)
ORDER BY kind, subject
ON CONFLICT (kind, subject) DO NOTHING
RETURNING kind, subject`, insKinds, insSubjects, insRecipients, insMessageIDs, insEventIDs, now, until)
		if err != nil {
			return fmt.Errorf("insert notifications: %w", err)
		}
		for rows.Next() {
			var k NotificationKey
			if err := rows.Scan(&k.Kind, &k.Subject); err != nil {
				rows.Close()
				return fmt.Errorf("scan inserted notification: %w", err)
			}
			decided[k] = ClaimResult{NotificationKey: k, Outcome: ClaimNew, Attempts: 1}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("insert notifications: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim %d notifications: %w", len(claims), err)
	}
	out := make([]ClaimResult, len(claims))
	answered := make(map[NotificationKey]bool, len(claims))
	for i, c := range claims {
		if answered[c.NotificationKey] {
			out[i] = ClaimResult{NotificationKey: c.NotificationKey, Outcome: ClaimBusy}
			continue
		}
		answered[c.NotificationKey] = true
		out[i] = decided[c.NotificationKey]
	}
	return out, nil
}

// MarkSent records that the SMTP server accepted the e-mail. It reports false when the row was
// not sending (another claimer took it over after the lease ran out and marked it first).
func (s *NotificationStore) MarkSent(ctx context.Context, k NotificationKey, now time.Time) (bool, error) {
	tag, err := s.pool.Exec(ctx, `
UPDATE notifications SET state = 'sent', sent_at = $3, lease_until = NULL, last_error = NULL
WHERE kind = $1 AND subject = $2 AND state = 'sending'`, k.Kind, k.Subject, now.UTC())
	if err != nil {
		return false, fmt.Errorf("mark %s %s sent: %w", k.Kind, k.Subject, err)
	}
	return tag.RowsAffected() == 1, nil
}

// MarkFailed releases a claim whose attempt failed before the SMTP server accepted the message,
// so the next delivery claims it again at once (ClaimRetry). A row already sent is left alone.
func (s *NotificationStore) MarkFailed(ctx context.Context, k NotificationKey, cause string) error {
	if _, err := s.pool.Exec(ctx, `
UPDATE notifications SET state = 'failed', lease_until = NULL, last_error = $3
WHERE kind = $1 AND subject = $2 AND state = 'sending'`, k.Kind, k.Subject, cause); err != nil {
		return fmt.Errorf("mark %s %s failed: %w", k.Kind, k.Subject, err)
	}
	return nil
}

// Notification returns the row of one e-mail; found is false when nobody claimed it.
func (s *NotificationStore) Notification(ctx context.Context, k NotificationKey) (n Notification, found bool, err error) {
	var lastError *string
	err = s.pool.QueryRow(ctx, `
SELECT kind, subject, recipient, message_id, event_id, state, attempts, resends, lease_until, last_error, claimed_at, sent_at
FROM notifications WHERE kind = $1 AND subject = $2`, k.Kind, k.Subject).Scan(
		&n.Kind, &n.Subject, &n.Recipient, &n.MessageID, &n.EventID, &n.State, &n.Attempts, &n.Resends,
		&n.LeaseUntil, &lastError, &n.ClaimedAt, &n.SentAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Notification{}, false, nil
	}
	if err != nil {
		return Notification{}, false, fmt.Errorf("read notification %s %s: %w", k.Kind, k.Subject, err)
	}
	if lastError != nil {
		n.LastError = *lastError
	}
	return n, true, nil
}
