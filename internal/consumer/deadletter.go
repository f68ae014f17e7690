package consumer

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/event"
)

// Headers the consumer adds to the records it forwards to retry topics. The original record's
// key, value and headers are kept; these are added (and replaced at every tier).
const (
	HeaderRetryAttempt   = "retry-attempt"    // the retry tier, 1..N
	HeaderRetryNotBefore = "retry-not-before" // unix milliseconds; not processed before then
	HeaderSourceTopic    = "source-topic"     // of the original record
	HeaderSourcePart     = "source-partition" // of the original record
	HeaderSourceOffset   = "source-offset"    // of the original record
	HeaderErrorClass     = "error-class"      // "transient" or "permanent"
	HeaderError          = "error"            // the last error's text
)

// Headers the consumer adds to the records it writes to the dead-letter topic.
const (
	HeaderDLQSourceTopic  = "dlq-source-topic"     // of the original record, not of a retry copy
	HeaderDLQSourcePart   = "dlq-source-partition" // of the original record
	HeaderDLQSourceOffset = "dlq-source-offset"    // of the original record
	HeaderDLQAttempts     = "dlq-attempts"         // deliveries: 1 + the retry tiers it went through
	HeaderDLQErrorClass   = "dlq-error-class"      // "transient" (retries exhausted) or "permanent"
	HeaderDLQError        = "dlq-error"            // the last error's text
	HeaderDLQTime         = "dlq-time"             // RFC 3339, UTC
	// HeaderDLQReplayGroup is set only on dead letters written by a replay group (Config.GroupID):
	// the replay group's id. Optional; a re-drive drops it like the other dlq-* headers.
	HeaderDLQReplayGroup = "dlq-replay-group"
)

// maxErrorHeader bounds the error text carried in a header.
const maxErrorHeader = 1024

// DeadLetter is a record read back from a dead-letter topic: where the original record was, why it
// was given up, and the original key, value and headers.
type DeadLetter struct {
	Topic     string // source topic of the original record
	Partition int32
	Offset    int64
	Attempts  int    // deliveries before it was given up
	Class     string // "permanent" or "transient"
	Error     string
	Time      time.Time // when it was dead-lettered
	// ReplayGroup is the replay group that gave the record up (orderctl replay range); empty for
	// the live group's own dead letters.
	ReplayGroup string
	Key         []byte
	Value       []byte
	Headers     []kgo.RecordHeader // the original headers, without the dlq-* ones
}

// ErrNotDeadLetter means a record lacks the headers the consumer writes to dead letters.
var ErrNotDeadLetter = errors.New("not a dead-letter record")

// ParseDeadLetter reads a record of a dead-letter topic. The error wraps [ErrNotDeadLetter] when a
// required header is missing or invalid.
func ParseDeadLetter(r *kgo.Record) (DeadLetter, error) {
	d := DeadLetter{Key: r.Key, Value: r.Value}
	var have [7]bool
	for _, h := range r.Headers {
		v := string(h.Value)
		var err error
		switch h.Key {
		case HeaderDLQSourceTopic:
			d.Topic, have[0] = v, true
		case HeaderDLQSourcePart:
			var p int64
			p, err = strconv.ParseInt(v, 10, 32)
			d.Partition, have[1] = int32(p), true
		case HeaderDLQSourceOffset:
			d.Offset, err = strconv.ParseInt(v, 10, 64)
			have[2] = true
		case HeaderDLQAttempts:
			d.Attempts, err = strconv.Atoi(v)
			have[3] = true
		case HeaderDLQErrorClass:
			d.Class, have[4] = v, true
		case HeaderDLQError:
			d.Error, have[5] = v, true
		case HeaderDLQTime:
			d.Time, err = time.Parse(time.RFC3339Nano, v)
			have[6] = true
		case HeaderDLQReplayGroup:
			d.ReplayGroup = v
		default:
			d.Headers = append(d.Headers, h)
		}
		if err != nil {
			return DeadLetter{}, fmt.Errorf("dead letter %s/%d@%d: header %s: %w: %w", r.Topic, r.Partition, r.Offset, h.Key, err, ErrNotDeadLetter)
		}
	}
	names := [7]string{HeaderDLQSourceTopic, HeaderDLQSourcePart, HeaderDLQSourceOffset, HeaderDLQAttempts, HeaderDLQErrorClass, HeaderDLQError, HeaderDLQTime}
	for i, ok := range have {
		if !ok {
			return DeadLetter{}, fmt.Errorf("dead letter %s/%d@%d: missing header %s: %w", r.Topic, r.Partition, r.Offset, names[i], ErrNotDeadLetter)
		}
	}
	return d, nil
}

// Redrive returns a record that puts the original back on its source topic (key, value and
// original headers), for ops re-driving dead letters after a fix.
func (d DeadLetter) Redrive() *kgo.Record {
	return &kgo.Record{Topic: d.Topic, Key: d.Key, Value: d.Value, Headers: append([]kgo.RecordHeader(nil), d.Headers...)}
}

// origin is where a record first entered the group: its own position for a source-topic record,
// the source-* headers for a retry copy.
type origin struct {
	topic     string
	partition int32
	offset    int64
}

func originOf(r *kgo.Record, tier int) origin {
	o := origin{topic: r.Topic, partition: r.Partition, offset: r.Offset}
	if tier == 0 {
		return o
	}
	t, tok := header(r, HeaderSourceTopic)
	p, perr := strconv.ParseInt(headerValue(r, HeaderSourcePart), 10, 32)
	off, oerr := strconv.ParseInt(headerValue(r, HeaderSourceOffset), 10, 64)
	if tok && perr == nil && oerr == nil {
		o = origin{topic: t, partition: int32(p), offset: off}
	}
	return o
}

// notBefore reads a retry copy's retry-not-before header; the zero time if it has none.
func notBefore(r *kgo.Record) time.Time {
	v, ok := header(r, HeaderRetryNotBefore)
	if !ok {
		return time.Time{}
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

func isForwardHeader(k string) bool {
	switch k {
	case HeaderRetryAttempt, HeaderRetryNotBefore, HeaderSourceTopic, HeaderSourcePart, HeaderSourceOffset,
		HeaderErrorClass, HeaderError,
		HeaderDLQSourceTopic, HeaderDLQSourcePart, HeaderDLQSourceOffset, HeaderDLQAttempts, HeaderDLQErrorClass,
		HeaderDLQError, HeaderDLQTime, HeaderDLQReplayGroup:
		return true
	}
	return false
}

// originalHeaders returns r's headers without the ones the consumer adds (retry-*, source-*, error*,
// dlq-*), so a record forwarded again, or re-driven, carries each of them once.
func originalHeaders(r *kgo.Record, extra int) []kgo.RecordHeader {
	hs := make([]kgo.RecordHeader, 0, len(r.Headers)+extra)
	for _, h := range r.Headers {
		if !isForwardHeader(h.Key) {
			hs = append(hs, h)
		}
	}
	return hs
}

func retryRecord(topic string, r *kgo.Record, o origin, tier int, notBefore time.Time, err error) *kgo.Record {
	hs := originalHeaders(r, 7)
	hs = append(hs,
		kgo.RecordHeader{Key: HeaderRetryAttempt, Value: strconv.AppendInt(nil, int64(tier), 10)},
		kgo.RecordHeader{Key: HeaderRetryNotBefore, Value: strconv.AppendInt(nil, notBefore.UnixMilli(), 10)},
		kgo.RecordHeader{Key: HeaderSourceTopic, Value: []byte(o.topic)},
		kgo.RecordHeader{Key: HeaderSourcePart, Value: strconv.AppendInt(nil, int64(o.partition), 10)},
		kgo.RecordHeader{Key: HeaderSourceOffset, Value: strconv.AppendInt(nil, o.offset, 10)},
		kgo.RecordHeader{Key: HeaderErrorClass, Value: []byte(ClassOf(err))},
		kgo.RecordHeader{Key: HeaderError, Value: errorText(err)},
	)
	return &kgo.Record{Topic: topic, Key: r.Key, Value: r.Value, Headers: hs}
}

// deadLetterRecord is the dead-letter copy of r, for the group's dead-letter topic; a replay
// group's copies go to the live group's topic, marked with the replay group's id.
func (c *Consumer) deadLetterRecord(r *kgo.Record, o origin, attempts int, now time.Time, err error) *kgo.Record {
	rec := deadLetterRecord(event.DeadLetterTopic(c.cfg.Group), r, o, attempts, now, err)
	if c.cfg.replay() {
		rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: HeaderDLQReplayGroup, Value: []byte(c.cfg.KafkaGroup())})
	}
	return rec
}

func deadLetterRecord(topic string, r *kgo.Record, o origin, attempts int, now time.Time, err error) *kgo.Record {
	hs := originalHeaders(r, 8)
	hs = append(hs,
		kgo.RecordHeader{Key: HeaderDLQSourceTopic, Value: []byte(o.topic)},
		kgo.RecordHeader{Key: HeaderDLQSourcePart, Value: strconv.AppendInt(nil, int64(o.partition), 10)},
		kgo.RecordHeader{Key: HeaderDLQSourceOffset, Value: strconv.AppendInt(nil, o.offset, 10)},
		kgo.RecordHeader{Key: HeaderDLQAttempts, Value: strconv.AppendInt(nil, int64(attempts), 10)},
		kgo.RecordHeader{Key: HeaderDLQErrorClass, Value: []byte(ClassOf(err))},
		kgo.RecordHeader{Key: HeaderDLQError, Value: errorText(err)},
		kgo.RecordHeader{Key: HeaderDLQTime, Value: now.UTC().AppendFormat(nil, time.RFC3339Nano)},
	)
	return &kgo.Record{Topic: topic, Key: r.Key, Value: r.Value, Headers: hs}
}

func errorText(err error) []byte {
	s := err.Error()
	if len(s) > maxErrorHeader {
		s = s[:maxErrorHeader]
	}
	return []byte(s)
}

func header(r *kgo.Record, key string) (string, bool) {
	for i := len(r.Headers) - 1; i >= 0; i-- {
		if r.Headers[i].Key == key {
			return string(r.Headers[i].Value), true
		}
	}
	return "", false
}

func headerValue(r *kgo.Record, key string) string {
	v, _ := header(r, key)
	return v
}
