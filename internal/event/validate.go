package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/orderpipe/orderpipe/internal/input"
	"github.com/orderpipe/orderpipe/schemas"
)

// ErrInvalid means event data does not conform to the schema of its event type. Errors that wrap
// it are a [*ValidationError] naming each offending field. Retrying cannot help.
var ErrInvalid = errors.New("invalid event data")

// ErrUnknownType means an event type has no schema in this build.
var ErrUnknownType = errors.New("unknown event type")

// FieldProblem is one reason event data is invalid.
type FieldProblem struct {
	// Field is a JSON pointer into the data, e.g. "/lines/0/sku"; "" is the whole document.
	Field string
	// Detail says what is wrong with it.
	Detail string
}

// ValidationError lists why data of an event type failed validation, one problem per field, sorted
// by field. errors.Is(err, ErrInvalid) holds for it.
type ValidationError struct {
	Type     string
	Problems []FieldProblem
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("invalid ")
	b.WriteString(e.Type)
	b.WriteString(" data: ")
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		if p.Field == "" {
			b.WriteString("(document)")
		} else {
			b.WriteString(p.Field)
		}
		b.WriteString(": ")
		b.WriteString(p.Detail)
	}
	return b.String()
}

// Is reports whether target is [ErrInvalid].
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// Validator validates event data against the schemas in [schemas.FS], compiled once. It is safe
// for concurrent use.
type Validator struct {
	byType  map[string]*jsonschema.Schema
	printer *message.Printer
}

// NewValidator compiles every event schema in [schemas.FS] (draft 2020-12, format assertions on)
// and binds each known event type to its current schema.
func NewValidator() (*Validator, error) {
	files, err := fs.Glob(schemas.FS, "*.json")
	if err != nil {
		return nil, fmt.Errorf("list event schemas: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	ids := make([]string, 0, len(files))
	for _, name := range files {
		data, err := fs.ReadFile(schemas.FS, name)
		if err != nil {
			return nil, fmt.Errorf("read schema %s: %w", name, err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("parse schema %s: %w", name, err)
		}
		obj, _ := doc.(map[string]any)
		id, _ := obj["$id"].(string)
		if id == "" {
			return nil, fmt.Errorf("schema %s: no $id", name)
		}
		if err := c.AddResource(id, doc); err != nil {
			return nil, fmt.Errorf("add schema %s: %w", name, err)
		}
		ids = append(ids, id)
	}
	byID := make(map[string]*jsonschema.Schema, len(ids))
	for _, id := range ids {
		sch, err := c.Compile(id)
		if err != nil {
			return nil, fmt.Errorf("compile schema %s: %w", id, err)
		}
		byID[id] = sch
	}
	v := &Validator{
		byType:  make(map[string]*jsonschema.Schema),
		printer: message.NewPrinter(language.English),
	}
	for typ, id := range currentSchemas() {
		sch, ok := byID[id]
		if !ok {
			return nil, fmt.Errorf("event type %s: schema %s not in schemas.FS", typ, id)
		}
		v.byType[typ] = sch
	}
	return v, nil
}

// gateOptions: payment_id (OrderConfirmed) is the payment provider's id of the capture, issued
// by the provider and not typed by anyone; the provider's ids may hold a long digit run that
// passes Luhn by chance (one in a few hundred of the simulator's did), so it is not searched for card
// data. idempotency_fingerprint (OrderPlaced) is the api's own SHA-256 in hex, whose digit runs
// pass Luhn just as often. Client text in events (names, addresses, the token) is searched.
var gateOptions = input.Options{Issued: map[string]bool{"payment_id": true, "idempotency_fingerprint": true}}

// Validate checks data against the current schema of eventType. Invalid data yields a
// [*ValidationError] (which wraps [ErrInvalid]); an event type without a schema yields an error
// wrapping [ErrUnknownType]. The current schema accepts every earlier version of the data.
func (v *Validator) Validate(eventType string, data []byte) error {
	sch, ok := v.byType[eventType]
	if !ok {
		return fmt.Errorf("validate %q: %w", eventType, ErrUnknownType)
	}
	// The input gate first: the schema cannot say "no duplicate keys, strict UTF-8, no control
	// characters, no card data", and a reader must not see a document other readers see
	// differently. A problem names the field, never its value.
	if ps, _ := input.JSON(data, gateOptions); len(ps) > 0 {
		problems := make([]FieldProblem, len(ps))
		for i, p := range ps {
			problems[i] = FieldProblem{Field: p.Pointer(), Detail: p.Detail}
		}
		return &ValidationError{Type: eventType, Problems: problems}
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return &ValidationError{Type: eventType, Problems: []FieldProblem{{Detail: "not a JSON document: " + err.Error()}}}
	}
	err = sch.Validate(inst)
	if err == nil {
		return nil
	}
	var verr *jsonschema.ValidationError
	if !errors.As(err, &verr) {
		return fmt.Errorf("validate %s: %w", eventType, err)
	}
	problems := v.problems(verr, nil)
	slices.SortFunc(problems, func(a, b FieldProblem) int {
		if c := strings.Compare(a.Field, b.Field); c != 0 {
			return c
		}
		return strings.Compare(a.Detail, b.Detail)
	})
	return &ValidationError{Type: eventType, Problems: slices.Compact(problems)}
}

// problems flattens the leaves of a jsonschema error tree into field problems. Missing and unknown
// properties are reported at the property itself, not at the object that holds it.
func (v *Validator) problems(e *jsonschema.ValidationError, out []FieldProblem) []FieldProblem {
	if len(e.Causes) > 0 {
		for _, c := range e.Causes {
			out = v.problems(c, out)
		}
		return out
	}
	at := jsonPointer(e.InstanceLocation)
	switch k := e.ErrorKind.(type) {
	case *kind.Required:
		for _, name := range k.Missing {
			out = append(out, FieldProblem{Field: at + "/" + escapePointer(name), Detail: "required"})
		}
	case *kind.AdditionalProperties:
		for _, name := range k.Properties {
			out = append(out, FieldProblem{Field: at + "/" + escapePointer(name), Detail: "unknown field"})
		}
	default:
		out = append(out, FieldProblem{Field: at, Detail: k.LocalizedString(v.printer)})
	}
	return out
}

func jsonPointer(tokens []string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(escapePointer(t))
	}
	return b.String()
}

func escapePointer(token string) string {
	if !strings.ContainsAny(token, "~/") {
		return token
	}
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(token)
}

// Data is implemented by the wire type of each event type's data.
type Data interface {
	// EventType returns the event type whose data this is, e.g. [TypeOrderPlaced].
	EventType() string
}

// Decode validates env's data against the current schema of env.Type and unmarshals it into T.
// env.Type must be T's event type. Invalid data yields an error wrapping [ErrInvalid].
func Decode[T Data](v *Validator, env Envelope) (T, error) {
	var out T
	if want := out.EventType(); env.Type != want {
		return out, fmt.Errorf("decode event %s: type %q, want %q", env.ID, env.Type, want)
	}
	if err := v.Validate(env.Type, env.Data); err != nil {
		return out, fmt.Errorf("decode event %s: %w", env.ID, err)
	}
	if err := json.Unmarshal(env.Data, &out); err != nil {
		return out, fmt.Errorf("decode %s event %s: %w", env.Type, env.ID, err)
	}
	return out, nil
}
