package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/event"
)

// Handler processes the records of one batch: records fetched in one poll, possibly from several
// topics and partitions, each partition's records in offset order. It returns one error per
// record, index-aligned with recs: nil means the record is done (its effect is durable), an error
// is classified with [Permanent] or [Transient] (unclassified errors count as transient). A nil or
// empty slice means every record is done.
//
// Handlers must be idempotent by event id: every record can be delivered more than once (after a
// crash, a rebalance, an in-place retry, or a retry topic).
type Handler interface {
	Handle(ctx context.Context, recs []*kgo.Record) []error
}

// HandlerFunc adapts a function to [Handler].
type HandlerFunc func(ctx context.Context, recs []*kgo.Record) []error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, recs []*kgo.Record) []error { return f(ctx, recs) }

// Error classes, as reported by [ClassOf], in metrics and in the error-class headers.
const (
	ClassPermanent = "permanent"
	ClassTransient = "transient"
)

type classified struct {
	class string
	err   error
}

func (c *classified) Error() string { return c.err.Error() }
func (c *classified) Unwrap() error { return c.err }

// Permanent marks err as permanent: retrying cannot help (an undecodable or schema-invalid record),
// so the record goes straight to the dead-letter topic. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &classified{class: ClassPermanent, err: err}
}

// Transient marks err as transient: the record is retried (in place, then through the retry
// topics, or in place only in InPlaceOnly mode). Unclassified errors count as transient too; the
// marker exists for clarity at the call site. Transient(nil) is nil.
func Transient(err error) error {
	if err == nil {
		return nil
	}
	return &classified{class: ClassTransient, err: err}
}

// ClassOf returns err's class. A marker ([Permanent] or [Transient]) decides when err carries
// one (the outermost wins); otherwise the error's nature does:
//
//   - a Postgres error (*pgconn.PgError) of SQLSTATE class 22 (data exception: a NUL or invalid
//     UTF-8 in text, a value out of range), 23 (integrity constraint violation) other than 23505
//     unique_violation, or 42 (syntax error or access rule violation) is permanent: the same
//     statement with the same data fails the same way however often it runs. A unique violation
//     is the race the design expects between two deliveries (the retry finds the winner's row);
//     every other class (connection, serialization failure, deadlock, resources, operator
//     intervention) is transient;
//   - an undecodable or schema-invalid event (event.ErrMalformed, event.ErrInvalid,
//     event.ErrUnknownType, a JSON syntax or type error) is permanent;
//   - everything else is transient.
func ClassOf(err error) string {
	var c *classified
	if errors.As(err, &c) {
		return c.class
	}
	if permanentByNature(err) {
		return ClassPermanent
	}
	return ClassTransient
}

// uniqueViolation is SQLSTATE 23505.
const uniqueViolation = "23505"

func permanentByNature(err error) bool {
	var pg *pgconn.PgError
	if errors.As(err, &pg) && len(pg.Code) == 5 {
		switch pg.Code[:2] {
		case "22", "42":
			return true
		case "23":
			return pg.Code != uniqueViolation
		}
		return false
	}
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	return errors.Is(err, event.ErrMalformed) || errors.Is(err, event.ErrInvalid) || errors.Is(err, event.ErrUnknownType) ||
		errors.As(err, &syntax) || errors.As(err, &typ)
}

// middleware wraps a Handler (watermill style). The consumer composes its own chain: metrics,
// then recover, around the handler it is given.
type middleware func(Handler) Handler

func chain(h Handler, mws ...middleware) Handler {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}

// recoverer turns a panic in the handler into errors instead of a dead process. A panicking batch
// of several records is re-run record by record, so the one record that panics is isolated and the
// others are not retried or dead-lettered with it; a record that panics on its own gets a
// transient error (it is retried, and dead-lettered when the retries run out). Every panic is
// logged with its stack.
func recoverer(log *slog.Logger, group string) middleware {
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, recs []*kgo.Record) []error {
			errs, p := callSafely(ctx, next, recs)
			if p == nil {
				return errs
			}
			logPanic(ctx, log, group, recs, p)
			if len(recs) == 1 {
				return []error{Transient(panicError(p))}
			}
			errs = make([]error, len(recs))
			for i, r := range recs {
				one, p := callSafely(ctx, next, recs[i:i+1])
				switch {
				case p != nil:
					logPanic(ctx, log, group, recs[i:i+1], p)
					errs[i] = Transient(panicError(p))
				case len(one) == 1:
					errs[i] = one[0]
				case len(one) == 0:
					errs[i] = nil
				default:
					errs[i] = Transient(fmt.Errorf("handler returned %d errors for record %s/%d@%d", len(one), r.Topic, r.Partition, r.Offset))
				}
			}
			return errs
		})
	}
}

type panicked struct {
	value any
	stack []byte
}

func callSafely(ctx context.Context, h Handler, recs []*kgo.Record) (errs []error, p *panicked) {
	defer func() {
		if v := recover(); v != nil {
			p = &panicked{value: v, stack: debug.Stack()}
		}
	}()
	return h.Handle(ctx, recs), nil
}

func panicError(p *panicked) error { return fmt.Errorf("handler panic: %v", p.value) }

func logPanic(ctx context.Context, log *slog.Logger, group string, recs []*kgo.Record, p *panicked) {
	attrs := []slog.Attr{
		slog.String("group", group),
		slog.Int("records", len(recs)),
		slog.String("panic", fmt.Sprint(p.value)),
		slog.String("stack", string(p.stack)),
	}
	if len(recs) == 1 {
		r := recs[0]
		attrs = append(attrs, slog.String("topic", r.Topic), slog.Int("partition", int(r.Partition)),
			slog.Int64("offset", r.Offset), slog.String("event_id", headerValue(r, "ce_id")))
	}
	log.LogAttrs(ctx, slog.LevelError, "handler panicked", attrs...)
}

// instrumented observes every handler call: batch size and processing time.
func instrumented(m *metrics, group string) middleware {
	batch := m.batchRecords.WithLabelValues(group)
	dur := m.handleSeconds.WithLabelValues(group)
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, recs []*kgo.Record) []error {
			start := time.Now()
			errs := next.Handle(ctx, recs)
			dur.Observe(time.Since(start).Seconds())
			batch.Observe(float64(len(recs)))
			return errs
		})
	}
}
