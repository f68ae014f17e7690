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
	"strings"
	"sync"

	"github.com/labstack/echo/v4"

	"github.com/orderpipe/orderpipe/internal/order"
)

// decodeStrict decodes a JSON object body into dst (a pointer to a struct with json tags):
//   - a content type other than JSON is 415;
//   - malformed JSON, a non-object or trailing data is 400;
//   - every unknown field (at any depth) and a value of the wrong type is a 422 naming the field.
func decodeStrict(c echo.Context, body []byte, dst any) error {
	if ct := c.Request().Header.Get(echo.HeaderContentType); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return newProblem(http.StatusUnsupportedMediaType, "unsupported-media-type", "Unsupported media type", "Send the body as application/json.")
		}
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
	var problems []order.FieldError
	unknownFields(raw, reflect.TypeOf(dst).Elem(), "", &problems)
	if err := json.Unmarshal(body, dst); err != nil {
		var te *json.UnmarshalTypeError
		if !errors.As(err, &te) {
			return badRequest("The body is not valid JSON: " + jsonErrorText(err))
		}
		problems = append(problems, order.FieldError{Field: te.Field, Detail: fmt.Sprintf("must be %s, got %s", jsonKind(te.Type), te.Value)})
	}
	if len(problems) > 0 {
		return &order.InvalidError{Problems: problems}
	}
	return nil
}

// unknownFields lists every object key that has no matching json tag in t, with its path.
func unknownFields(v any, t reflect.Type, path string, out *[]order.FieldError) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch val := v.(type) {
	case map[string]any:
		if t.Kind() != reflect.Struct {
			return
		}
		fields := jsonFields(t)
		keys := make([]string, 0, len(val))
		for k := range val {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p := k
			if path != "" {
				p = path + "." + k
			}
			ft, ok := fields[k]
			if !ok {
				*out = append(*out, order.FieldError{Field: p, Detail: "unknown field"})
				continue
			}
			unknownFields(val[k], ft, p, out)
		}
	case []any:
		if t.Kind() != reflect.Slice {
			return
		}
		for i, e := range val {
			unknownFields(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i), out)
		}
	}
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
	case reflect.Int, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint32, reflect.Uint64:
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
