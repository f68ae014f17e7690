package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/labstack/echo/v4"

	"github.com/orderpipe/orderpipe/internal/input"
	"github.com/orderpipe/orderpipe/internal/order"
)

// decodeStrict decodes a JSON object body into dst (a pointer to a struct with json tags):
//   - a content type other than JSON is 415;
//   - anything that looks like a card number, in any key or value, is 422 card-data-rejected
//     (also when the JSON is malformed), naming the fields and never the value;
//   - malformed JSON, a non-object or trailing data is 400;
//   - everything else is one 422 listing every field at once: text that is not strict UTF-8 or
//     holds control characters, keys given twice, unknown fields (at any depth), and every value
//     of the wrong type.
func decodeStrict(c echo.Context, body []byte, dst any) error {
	if ct := c.Request().Header.Get(echo.HeaderContentType); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return newProblem(http.StatusUnsupportedMediaType, "unsupported-media-type", "Unsupported media type", "Send the body as application/json.")
		}
	}
	gate, _ := input.JSON(body, input.Options{})
	if input.HasCard(gate) {
		return cardDataRejected(gate)
	}
	var raw any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return badRequest("The body is not valid JSON: " + jsonErrorText(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest("The body has data after the JSON document.")
	}
	if _, ok := raw.(map[string]any); !ok {
		return badRequest("The body must be a JSON object.")
	}
	problems := fieldErrors(gate)
	fieldProblems(raw, reflect.TypeOf(dst).Elem(), nil, &problems)
	if len(problems) > 0 {
		return &order.InvalidError{Problems: problems}
	}
	if err := json.Unmarshal(body, dst); err != nil {
		// Not reached: fieldProblems checked every value's type. Kept so a gap shows as a 422.
		var te *json.UnmarshalTypeError
		if !errors.As(err, &te) {
			return badRequest("The body is not valid JSON: " + jsonErrorText(err))
		}
		return &order.InvalidError{Problems: []order.FieldError{{Field: te.Field, Detail: fmt.Sprintf("must be %s, got %s", jsonKind(te.Type), te.Value)}}}
	}
	return nil
}

var jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()

// fieldProblems lists every object key that has no matching json tag in t and every value whose
// JSON type does not fit its field, with their paths (lines[0].quantity). null fits any field,
// as in encoding/json; a type with its own UnmarshalJSON (time.Time, json.RawMessage) checks its
// value itself.
func fieldProblems(v any, t reflect.Type, path []any, out *[]order.FieldError) {
	for t.Kind() == reflect.Pointer {
		if v == nil {
			return
		}
		t = t.Elem()
	}
	if v == nil || t.Implements(jsonUnmarshaler) || reflect.PointerTo(t).Implements(jsonUnmarshaler) {
		return
	}
	wrong := func(got string) {
		*out = append(*out, order.FieldError{Field: input.Dotted(path), Detail: fmt.Sprintf("must be %s, got %s", jsonKind(t), got)})
	}
	switch t.Kind() {
	case reflect.Interface:
		return
	case reflect.String:
		if _, ok := v.(string); !ok {
			wrong(jsonValueKind(v))
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			wrong(jsonValueKind(v))
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := v.(json.Number)
		if !ok {
			wrong(jsonValueKind(v))
			return
		}
		if _, err := strconv.ParseInt(string(n), 10, t.Bits()); err != nil {
			*out = append(*out, order.FieldError{Field: input.Dotted(path), Detail: fmt.Sprintf("must be an integer from %d to %d", int64(-1)<<(t.Bits()-1), int64(1<<(t.Bits()-1)-1))})
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, ok := v.(json.Number)
		if !ok {
			wrong(jsonValueKind(v))
			return
		}
		if _, err := strconv.ParseUint(string(n), 10, t.Bits()); err != nil {
			*out = append(*out, order.FieldError{Field: input.Dotted(path), Detail: "must be a non-negative integer"})
		}
	case reflect.Float32, reflect.Float64:
		if _, ok := v.(json.Number); !ok {
			wrong(jsonValueKind(v))
		}
	case reflect.Slice, reflect.Array:
		arr, ok := v.([]any)
		if !ok {
			wrong(jsonValueKind(v))
			return
		}
		for i, e := range arr {
			fieldProblems(e, t.Elem(), append(path[:len(path):len(path)], i), out)
		}
	case reflect.Map:
		if _, ok := v.(map[string]any); !ok {
			wrong(jsonValueKind(v))
		}
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			wrong(jsonValueKind(v))
			return
		}
		fields := jsonFields(t)
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p := append(path[:len(path):len(path)], k)
			ft, ok := fields[k]
			if !ok {
				*out = append(*out, order.FieldError{Field: input.Dotted(p), Detail: "unknown field"})
				continue
			}
			fieldProblems(obj[k], ft, p, out)
		}
	}
}

// jsonValueKind names the JSON type of a decoded value.
func jsonValueKind(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return "null"
}

// fieldsByType caches jsonFields: request types are few and fixed, and building the map took a
// share of every order's decoding.
var fieldsByType sync.Map // reflect.Type -> map[string]reflect.Type

// jsonFields maps the json names of struct type t's fields to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	if f, ok := fieldsByType.Load(t); ok {
		return f.(map[string]reflect.Type)
	}
	fields := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			fields[name] = f.Type
		}
	}
	f, _ := fieldsByType.LoadOrStore(t, fields)
	return f.(map[string]reflect.Type)
}

func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "a boolean"
	case reflect.Slice:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return t.String()
}

func jsonErrorText(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%s (at byte %d)", se.Error(), se.Offset)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return "unexpected end of input"
	}
	return err.Error()
}
