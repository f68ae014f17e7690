package consumer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/event"
)

// HeaderRedriveCount counts how often `orderctl dlq redrive` put a record back on its source
// topic. The consumer keeps it when it dead-letters the record again (so the loop guard sees it),
// and it is part of a dead letter's cause: a re-driven record that fails again is dead-lettered
// again.
const HeaderRedriveCount = "redrive-count"

// DeadLetterMemory remembers which events a group dead-lettered and why (Config.DeadLetters).
type DeadLetterMemory interface {
	// DeadLettered reports whether group dead-lettered eventID for cause before.
	DeadLettered(ctx context.Context, group, eventID, cause string) (bool, error)
	// AddDeadLettered remembers that group dead-lettered eventID for cause.
	AddDeadLettered(ctx context.Context, group, eventID, cause string) error
}

// deadLetterKey is the event id and cause a dead letter of r is remembered by: the error class,
// the error text and the record's redrive-count, hashed. ok is false for a record without an
// event id (it is always dead-lettered).
func deadLetterKey(r *kgo.Record, err error) (id, cause string, ok bool) {
	id, ok = header(r, event.HeaderID)
	if !ok || id == "" {
		return "", "", false
	}
	h := sha256.New()
	h.Write([]byte(ClassOf(err)))
	h.Write([]byte{0})
	h.Write(errorText(err))
	h.Write([]byte{0})
	h.Write([]byte(headerValue(r, HeaderRedriveCount)))
	return id, hex.EncodeToString(h.Sum(nil)), true
}

// alreadyDeadLettered reports whether the dead letter of it was written before (a replay of the
// source topics delivers a poison record again): then it is settled without a second copy, so
// neither the dead-letter topic nor the dead-letter counter grows. A memory that cannot answer
// does not hold the record up: it is dead-lettered (a duplicate is better than a stuck partition).
func (c *Consumer) alreadyDeadLettered(ctx context.Context, it *item) bool {
	if c.cfg.DeadLetters == nil {
		return false
	}
	id, cause, ok := deadLetterKey(it.rec, it.err)
	if !ok {
		return false
	}
	seen, err := c.cfg.DeadLetters.DeadLettered(ctx, c.cfg.Group, id, cause)
	if err != nil {
		c.log.LogAttrs(ctx, slog.LevelWarn, "dead-letter memory not read; dead-lettering", c.recAttrs(it.rec, slog.Any("error", err))...)
		return false
	}
	if seen {
		c.log.LogAttrs(ctx, slog.LevelInfo, "record dead-lettered before for the same cause; not again", c.recAttrs(it.rec,
			slog.String("class", ClassOf(it.err)), slog.Any("error", it.err))...)
	}
	return seen
}

// rememberDeadLetter records that it was dead-lettered (after the broker acknowledged it).
func (c *Consumer) rememberDeadLetter(ctx context.Context, it *item) {
	if c.cfg.DeadLetters == nil {
		return
	}
	id, cause, ok := deadLetterKey(it.rec, it.err)
	if !ok {
		return
	}
	if err := c.cfg.DeadLetters.AddDeadLettered(ctx, c.cfg.Group, id, cause); err != nil {
		c.log.LogAttrs(ctx, slog.LevelWarn, "dead letter not remembered; a replay may dead-letter it again", c.recAttrs(it.rec, slog.Any("error", err))...)
	}
}
