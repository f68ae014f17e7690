// Package input is the one gate every decoder of outside data passes before the data is used:
// HTTP bodies, path parameters and the data of consumed Kafka events. It refuses what no field of
// orderpipe may carry, whatever its schema says:
//
//   - text that is not strict UTF-8 (invalid bytes, or a JSON \u escape of a lone surrogate,
//     which encoding/json would silently turn into U+FFFD);
//   - control characters (C0, DEL, C1), except newline, carriage return and tab in a field that
//     allows several lines;
//   - a JSON object that names a key twice (encoding/json keeps the last, other readers the first);
//   - anything that looks like a payment card number ([HasCardNumber]), in any key or string
//     value: card data never enters the system (PCI DSS scope stays with the payment provider).
//
// Every problem is listed with the path of its field; a problem never quotes the offending value.
// Limits of each field (lengths, ranges, patterns) are the schemas' business (schemas/).
package input

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Kind classifies a problem.
type Kind int

const (
	// KindText is invalid UTF-8 or a control character.
	KindText Kind = iota + 1
	// KindDuplicateKey is an object key given twice.
	KindDuplicateKey
	// KindCardData is something that looks like a payment card number.
	KindCardData
)

// Problem is one refused field. Path is the field's location as segments (string keys, int
// indexes); the value itself is never part of a problem.
type Problem struct {
	Path   []any
	Kind   Kind
	Detail string
}

// Field renders the path as the HTTP API names fields: shipping_address.name, lines[0].sku.
func (p Problem) Field() string { return Dotted(p.Path) }

// Pointer renders the path as a JSON pointer (RFC 6901): /shipping_address/name, /lines/0/sku.
func (p Problem) Pointer() string {
	var b strings.Builder
	for _, s := range p.Path {
		b.WriteByte('/')
		switch v := s.(type) {
		case int:
			b.WriteString(strconv.Itoa(v))
		case string:
			b.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(v))
		}
	}
	return b.String()
}

// Dotted renders path segments as lines[0].sku.
func Dotted(path []any) string {
	var b strings.Builder
	for _, s := range path {
		switch v := s.(type) {
		case int:
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(v))
			b.WriteByte(']')
		case string:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(v)
		}
	}
	return b.String()
}

// HasCard reports whether any problem is card data.
func HasCard(ps []Problem) bool {
	for _, p := range ps {
		if p.Kind == KindCardData {
			return true
		}
	}
	return false
}

// Details of the problems, fixed texts so that no value is ever echoed.
const (
	detailInvalidUTF8  = "is not valid UTF-8 text"
	detailControl      = "contains a control character"
	detailDuplicateKey = "is given twice in the same object"
	detailCardData     = "looks like a payment card number; card data is refused (send the payment provider's token)"
	detailCardKey      = "has a key that looks like a payment card number; card data is refused"
)

// ErrSyntax wraps the reason a document is not one well-formed JSON value.
var ErrSyntax = errors.New("not a well-formed JSON document")

// Options tune [JSON].
type Options struct {
	// Multiline lists the fields (dotted paths, indexes as [*]: "notes", "lines[*].note") whose
	// strings may contain newlines, carriage returns and tabs.
	Multiline map[string]bool
	// Issued lists the fields (same paths) that hold identifiers issued by a trusted system, such
	// as the payment provider's payment id: their text rules hold, but they are not searched for
	// card data (a provider's id may hold a long digit run that passes Luhn by chance, and it is
	// not something a person typed).
	Issued map[string]bool
}

// Text checks one string that is not part of a JSON document (a path parameter, a header value):
// strict UTF-8, no control characters (newline, carriage return and tab only when multiline), no
// card data. field names it in the problems.
func Text(field, s string, multiline bool) []Problem {
	return checkString(nil, []any{field}, s, multiline)
}

// JSON checks every key and string value of the JSON document doc. A document that is not one
// well-formed JSON value yields an error wrapping [ErrSyntax]; its raw bytes are still searched
// for card data, so that a broken body carrying a card number is refused as such.
func JSON(doc []byte, opts Options) ([]Problem, error) {
	var out []Problem
	if !utf8.Valid(doc) {
		out = append(out, Problem{Kind: KindText, Detail: detailInvalidUTF8})
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	w := walker{opts: opts, out: out}
	err := w.value(dec)
	if err == nil {
		if _, terr := dec.Token(); !errors.Is(terr, io.EOF) {
			err = errors.New("data after the document")
		}
	}
	if err != nil {
		out = w.out
		if !HasCard(out) && HasCardNumber(string(doc)) {
			out = append(out, Problem{Kind: KindCardData, Detail: detailCardData})
		}
		return out, errors.Join(ErrSyntax, err)
	}
	// Escapes are decoded by encoding/json, which turns a lone surrogate into U+FFFD without a
	// word: find them in the raw text.
	if hasLoneSurrogate(doc) {
		w.out = append(w.out, Problem{Kind: KindText, Detail: "has a \\u escape of a lone UTF-16 surrogate, which is not valid UTF-8 text"})
	}
	return w.out, nil
}

type walker struct {
	opts Options
	out  []Problem
	path []any
}

// value reads one JSON value (the decoder stands before it).
func (w *walker) value(dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			seen := map[string]bool{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return err
				}
				k, ok := kt.(string)
				if !ok {
					return errors.New("object key is not a string")
				}
				w.path = append(w.path, k)
				w.key(k, seen)
				err = w.value(dec)
				w.path = w.path[:len(w.path)-1]
				if err != nil {
					return err
				}
			}
		case '[':
			for i := 0; dec.More(); i++ {
				w.path = append(w.path, i)
				err := w.value(dec)
				w.path = w.path[:len(w.path)-1]
				if err != nil {
					return err
				}
			}
		default:
			return errors.New("unexpected " + t.String())
		}
		_, err := dec.Token() // the closing delimiter
		return err
	case string:
		if w.is(w.opts.Issued) {
			if d := textProblem(t, false); d != "" {
				w.out = append(w.out, Problem{Path: clone(w.path), Kind: KindText, Detail: d})
			}
			return nil
		}
		w.out = append(w.out, checkString(w.out[:0:0], w.path, t, w.is(w.opts.Multiline))...)
	}
	return nil
}

// key checks an object key: a duplicate, or text a key may not hold. A key with card data is
// reported at its object, so the key itself is never echoed.
func (w *walker) key(k string, seen map[string]bool) {
	parent := w.path[:len(w.path)-1]
	if HasCardNumber(k) {
		w.out = append(w.out, Problem{Path: clone(parent), Kind: KindCardData, Detail: detailCardKey})
		return
	}
	if seen[k] {
		w.out = append(w.out, Problem{Path: clone(w.path), Kind: KindDuplicateKey, Detail: detailDuplicateKey})
	}
	seen[k] = true
	if p := textProblem(k, false); p != "" {
		w.out = append(w.out, Problem{Path: clone(parent), Kind: KindText, Detail: "has a key that " + p})
	}
}

// is reports whether the current path is in the set (dotted, indexes as [*]).
func (w *walker) is(set map[string]bool) bool {
	if len(set) == 0 {
		return false
	}
	generic := make([]any, len(w.path))
	for i, s := range w.path {
		if _, ok := s.(int); ok {
			generic[i] = "[*]"
			continue
		}
		generic[i] = s
	}
	return set[strings.ReplaceAll(Dotted(generic), ".[*]", "[*]")]
}

func checkString(out []Problem, path []any, s string, multiline bool) []Problem {
	if HasCardNumber(s) {
		return append(out, Problem{Path: clone(path), Kind: KindCardData, Detail: detailCardData})
	}
	if d := textProblem(s, multiline); d != "" {
		out = append(out, Problem{Path: clone(path), Kind: KindText, Detail: d})
	}
	return out
}

// textProblem says what is wrong with s as text, or "".
func textProblem(s string, multiline bool) string {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				if !multiline || (c != '\n' && c != '\r' && c != '\t') {
					return detailControl
				}
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size <= 1 {
			return detailInvalidUTF8
		}
		if r >= 0x80 && r <= 0x9f { // C1 controls
			return detailControl
		}
		i += size
	}
	return ""
}

func clone(p []any) []any { return append([]any(nil), p...) }

// hasLoneSurrogate reports whether the raw JSON text s has a \u escape of a surrogate that is
// not part of a high-low pair. Escapes only occur inside strings, and \\ is skipped as a whole.
func hasLoneSurrogate(s []byte) bool {
	for i := 0; i+1 < len(s); i++ {
		if s[i] != '\\' {
			continue
		}
		if s[i+1] != 'u' {
			i++
			continue
		}
		r, ok := hex4(s[i+2:])
		if !ok {
			continue
		}
		if r >= 0xD800 && r <= 0xDBFF {
			if i+11 < len(s) && s[i+6] == '\\' && s[i+7] == 'u' {
				if lo, ok := hex4(s[i+8:]); ok && lo >= 0xDC00 && lo <= 0xDFFF {
					i += 11
					continue
				}
			}
			return true
		}
		if r >= 0xDC00 && r <= 0xDFFF {
			return true
		}
		i += 5
	}
	return false
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	v, err := strconv.ParseUint(string(b[:4]), 16, 16)
	return rune(v), err == nil
}
