package input

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzJSON: never a panic; a document the gate accepts decodes with encoding/json, and encoding
// it again gives a document the gate accepts too (nothing it lets through turns into something it
// refuses on the way to a topic).
func FuzzJSON(f *testing.F) {
	for _, s := range []string{`{"a":"x"}`, `{"a":"x\u0000"}`, `{"a":1,"a":2}`, `{"a":"\ud800"}`, `{"a":"tok_4242424242424242"}`,
		`[{"b":["4242 4242 4242 4242"]}]`, "{\"a\":\"\xff\"}", `{"4242424242424242":1}`, `{"a":"\\u0000"}`, `"x"`, `{`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		ps, err := JSON(doc, Options{})
		for _, p := range ps {
			if strings.Contains(p.Detail, "4242") {
				t.Fatalf("a problem quotes the value: %+v", p)
			}
		}
		if err != nil || len(ps) > 0 {
			return
		}
		var v any
		if err := json.Unmarshal(doc, &v); err != nil {
			t.Fatalf("accepted a document encoding/json refuses: %v", err)
		}
		again, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if ps, err := JSON(again, Options{}); err != nil || len(ps) > 0 {
			t.Fatalf("re-encoded document refused: %v %+v\n%s", err, ps, again)
		}
	})
}

// FuzzHasCardNumber: never a panic; a card number standing on its own is found whatever text
// surrounds it; full-width digits are the same digits (outside UUIDs and dates, which are masked
// in ASCII only).
func FuzzHasCardNumber(f *testing.F) {
	for _, s := range []string{"", "tok_visa_4242", "4242.4242.4242.4242", "+49 151 2345 6789", "0193a7c2-5f1e-7c3a-9b2d-4e5f6a7b8c9d", "2026-12-07T12:34:56.789Z", "5901234123457"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := HasCardNumber(s)
		if !HasCardNumber(s + " 4242424242424242 " + s) {
			t.Fatalf("a card number between %q is not found", s)
		}
		if strings.Contains(s, "-") {
			return
		}
		wide := strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return r - '0' + '０'
			}
			return r
		}, s)
		if HasCardNumber(wide) != got {
			t.Fatalf("HasCardNumber(%q) = %v, but %v with full-width digits", s, got, !got)
		}
	})
}
