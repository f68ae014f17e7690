package event

import (
	"errors"
	"fmt"
	"mime"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/input"
)

// ErrMalformed means a Kafka record is not a well-formed CloudEvent in binary mode: a required
// header is missing, duplicated or invalid. Retrying such a record cannot help.
var ErrMalformed = errors.New("malformed event record")

// CloudEvents binary-mode header names on Kafka records.
const (
	HeaderID          = "ce_id"
	HeaderType        = "ce_type"
	HeaderSource      = "ce_source"
	HeaderSpecVersion = "ce_specversion"
	HeaderTime        = "ce_time"
	HeaderDataSchema  = "ce_dataschema"
	HeaderContentType = "content-type"
)

// ContentType is the content type of every event's data.
const ContentType = "application/json"

// Envelope is one CloudEvent: its attributes and its JSON data. On Kafka it travels in binary
// mode: the attributes are record headers and Data is the record value.
type Envelope struct {
	// ID is unique per event and deterministic where a replay must reproduce it (see [ID]).
	ID string
	// Type is an event type such as [TypeOrderPlaced].
	Type string
	// Source identifies the producer, e.g. "/orderpipe/api".
	Source string
	// DataSchema is the $id of the JSON Schema Data was written against; optional.
	DataSchema string
	// Time is when the event happened; the zero time means unknown.
	Time time.Time
	// Data is the JSON event data.
	Data []byte
}

// Record returns the Kafka record of e for topic, with key as the record key (the order id, or the
// SKU for stock events). The record shares Data with e.
func (e Envelope) Record(topic string, key []byte) *kgo.Record {
	headers := make([]kgo.RecordHeader, 0, 7)
	headers = append(headers,
		kgo.RecordHeader{Key: HeaderSpecVersion, Value: []byte(SpecVersion)},
		kgo.RecordHeader{Key: HeaderID, Value: []byte(e.ID)},
		kgo.RecordHeader{Key: HeaderType, Value: []byte(e.Type)},
		kgo.RecordHeader{Key: HeaderSource, Value: []byte(e.Source)},
	)
	if !e.Time.IsZero() {
		headers = append(headers, kgo.RecordHeader{Key: HeaderTime, Value: e.Time.UTC().AppendFormat(nil, time.RFC3339Nano)})
	}
	if e.DataSchema != "" {
		headers = append(headers, kgo.RecordHeader{Key: HeaderDataSchema, Value: []byte(e.DataSchema)})
	}
	headers = append(headers, kgo.RecordHeader{Key: HeaderContentType, Value: []byte(ContentType)})
	return &kgo.Record{Topic: topic, Key: key, Value: e.Data, Headers: headers}
}

// FromRecord reads the envelope carried by r. ce_id, ce_type, ce_source and ce_specversion ("1.0")
// are required; ce_time, ce_dataschema and content-type are optional but must be valid when
// present (RFC 3339 time, application/json). A header given twice is malformed. The error wraps
// [ErrMalformed]. Data shares r.Value; it is not validated here (see [Validator]).
func FromRecord(r *kgo.Record) (Envelope, error) {
	if r == nil {
		return Envelope{}, fmt.Errorf("read event: nil record: %w", ErrMalformed)
	}
	var (
		e                 Envelope
		seen              [7]bool
		specVersion, ctyp string
	)
	for _, h := range r.Headers {
		var slot int
		switch h.Key {
		case HeaderID:
			slot, e.ID = 0, string(h.Value)
		case HeaderType:
			slot, e.Type = 1, string(h.Value)
		case HeaderSource:
			slot, e.Source = 2, string(h.Value)
		case HeaderSpecVersion:
			slot, specVersion = 3, string(h.Value)
		case HeaderTime:
			slot = 4
			t, err := time.Parse(time.RFC3339Nano, string(h.Value))
			if err != nil {
				return Envelope{}, recordError(r, fmt.Sprintf("header %s %s is not an RFC 3339 time", HeaderTime, quoted(string(h.Value))))
			}
			e.Time = t
		case HeaderDataSchema:
			slot, e.DataSchema = 5, string(h.Value)
		case HeaderContentType:
			slot, ctyp = 6, string(h.Value)
		default:
			continue
		}
		if seen[slot] {
			return Envelope{}, recordError(r, "header "+h.Key+" given twice")
		}
		seen[slot] = true
	}
	for _, req := range []struct{ name, value string }{
		{HeaderID, e.ID}, {HeaderType, e.Type}, {HeaderSource, e.Source}, {HeaderSpecVersion, specVersion},
	} {
		if req.value == "" {
			return Envelope{}, recordError(r, "header "+req.name+" missing or empty")
		}
	}
	// Attributes are text that ends up in logs, Postgres and dead letters: the input gate's
	// rules hold for them as for data (the problem never quotes the value).
	for _, h := range []struct{ name, value string }{
		{HeaderID, e.ID}, {HeaderType, e.Type}, {HeaderSource, e.Source}, {HeaderDataSchema, e.DataSchema},
	} {
		if ps := input.Text(h.name, h.value, false); len(ps) > 0 {
			return Envelope{}, recordError(r, "header "+h.name+" "+ps[0].Detail)
		}
	}
	if specVersion != SpecVersion {
		return Envelope{}, recordError(r, fmt.Sprintf("header %s is %s, want %q", HeaderSpecVersion, quoted(specVersion), SpecVersion))
	}
	if seen[6] {
		if mt, _, err := mime.ParseMediaType(ctyp); err != nil || mt != ContentType {
			return Envelope{}, recordError(r, fmt.Sprintf("header %s is %s, want %q", HeaderContentType, quoted(ctyp), ContentType))
		}
	}
	e.Data = r.Value
	return e, nil
}

// quoted quotes a header value for an error message, unless the input gate refuses it (control
// characters, card data): error messages end up in logs and dead letters.
func quoted(v string) string {
	if len(v) > 64 || len(input.Text("", v, false)) > 0 {
		return "(a value that cannot be shown)"
	}
	return strconv.Quote(v)
}

func recordError(r *kgo.Record, problem string) error {
	return fmt.Errorf("read event at %s/%d@%d: %s: %w", r.Topic, r.Partition, r.Offset, problem, ErrMalformed)
}
