package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DeadLetterLedger remembers what happened to dead letters after they were written: the records
// of a dead-letter topic that were re-driven, and the events each group dead-lettered per cause.
type DeadLetterLedger struct {
	pool *pgxpool.Pool
}

// NewDeadLetterLedger returns a DeadLetterLedger over pool.
func NewDeadLetterLedger(pool *pgxpool.Pool) *DeadLetterLedger { return &DeadLetterLedger{pool: pool} }

// DLQPosition is a record of a group's dead-letter topic.
type DLQPosition struct {
	Partition int32
	Offset    int64
}

// Redrive is a dead-letter record that was put back on its source topic.
type Redrive struct {
	DLQPosition
	EventID string // the record's event id; empty when it has none
}

// Redrives is what a group's re-drives did so far.
type Redrives struct {
	// Records are the re-driven records, with the event id each had: a record at that position
	// with another event id is not the one re-driven (the topic was re-created).
	Records map[DLQPosition]string
	ByEvent map[string]int // re-drives per event id (the loop guard)
}

// Redrives returns every record of group's dead-letter topic re-driven so far.
func (l *DeadLetterLedger) Redrives(ctx context.Context, group string) (Redrives, error) {
	r := Redrives{Records: map[DLQPosition]string{}, ByEvent: map[string]int{}}
	rows, err := l.pool.Query(ctx, `SELECT dlq_partition, dlq_offset, event_id FROM dead_letter_redrives WHERE consumer_group = $1`, group)
	if err != nil {
		return r, fmt.Errorf("re-drives of %s: %w", group, err)
	}
	defer rows.Close()
	for rows.Next() {
		var p DLQPosition
		var id string
		if err := rows.Scan(&p.Partition, &p.Offset, &id); err != nil {
			return r, fmt.Errorf("re-drives of %s: %w", group, err)
		}
		r.Records[p] = id
		if id != "" {
			r.ByEvent[id]++
		}
	}
	if err := rows.Err(); err != nil {
		return r, fmt.Errorf("re-drives of %s: %w", group, err)
	}
	return r, nil
}

// AddRedrives records re-driven records of group's dead-letter topic (one already recorded is
// kept as it was).
func (l *DeadLetterLedger) AddRedrives(ctx context.Context, group string, rs []Redrive) error {
	if len(rs) == 0 {
		return nil
	}
	parts := make([]int32, len(rs))
	offs := make([]int64, len(rs))
	ids := make([]string, len(rs))
	for i, r := range rs {
		parts[i], offs[i], ids[i] = r.Partition, r.Offset, r.EventID
	}
	_, err := l.pool.Exec(ctx, `
INSERT INTO dead_letter_redrives (consumer_group, dlq_partition, dlq_offset, event_id)
SELECT $1, p, o, e FROM unnest($2::int[], $3::bigint[], $4::text[]) AS t(p, o, e)
ON CONFLICT DO NOTHING`, group, parts, offs, ids)
	if err != nil {
		return fmt.Errorf("record %d re-drives of %s: %w", len(rs), group, err)
	}
	return nil
}

// DeadLettered reports whether group already dead-lettered eventID for cause.
func (l *DeadLetterLedger) DeadLettered(ctx context.Context, group, eventID, cause string) (bool, error) {
	var one int
	err := l.pool.QueryRow(ctx, `SELECT 1 FROM dead_lettered_events WHERE consumer_group = $1 AND event_id = $2 AND cause = $3`,
		group, eventID, cause).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("dead letter of %s event %s: %w", group, eventID, err)
	}
	return true, nil
}

// AddDeadLettered records that group dead-lettered eventID for cause.
func (l *DeadLetterLedger) AddDeadLettered(ctx context.Context, group, eventID, cause string) error {
	_, err := l.pool.Exec(ctx, `INSERT INTO dead_lettered_events (consumer_group, event_id, cause) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
		group, eventID, cause)
	if err != nil {
		return fmt.Errorf("record dead letter of %s event %s: %w", group, eventID, err)
	}
	return nil
}

// OrderStatuses returns the status of each of ids that has an orders row (a decided order); ids
// that are not UUIDs or have no row are left out.
func (l *DeadLetterLedger) OrderStatuses(ctx context.Context, ids []string) (map[string]string, error) {
	var uids []uuid.UUID
	for _, id := range ids {
		if u, err := uuid.Parse(id); err == nil {
			uids = append(uids, u)
		}
	}
	out := map[string]string{}
	if len(uids) == 0 {
		return out, nil
	}
	rows, err := l.pool.Query(ctx, `SELECT id::text, status FROM orders WHERE id = ANY($1)`, uids)
	if err != nil {
		return nil, fmt.Errorf("statuses of %d orders: %w", len(uids), err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, st string
		if err := rows.Scan(&id, &st); err != nil {
			return nil, fmt.Errorf("statuses of %d orders: %w", len(uids), err)
		}
		out[id] = st
	}
	return out, rows.Err()
}
