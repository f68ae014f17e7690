package input

import (
	"errors"
	"strings"
	"testing"
)

// The forms in which card numbers were seen in payment tokens and other fields (issue 15), and
// near-misses that must pass.
func TestHasCardNumber(t *testing.T) {
	t.Parallel()
	cards := []string{
		"4242424242424242",
		"tok_4242424242424242",
		"4242 4242 4242 4242",
		"4242-4242-4242-4242",
		"4242.4242.4242.4242",
		"4242_4242_4242_4242",
		"4242/4242/4242/4242",
		"4242\t4242\t4242\t4242",
		"4242\n4242\n4242\n4242",
		"4242\u00a04242\u00a04242\u00a04242", // NBSP
		"4242\u202f4242\u20094242\u200b4242", // narrow NBSP, thin space, zero-width space
		"4242\u20134242\u20144242\u00ad4242", // en dash, em dash, soft hyphen
		"４２４２４２４２４２４２４２４２",                   // full-width digits
		"４２４２－４２４２－４２４２－４２４２",                // full-width digits and hyphens
		"\u0664\u0662\u0664\u0662\u0664\u0662\u0664\u0662\u0664\u0662\u0664\u0662\u0664\u0662\u0664\u0662", // Arabic-Indic
		"cc:4242424242424242 exp 12/29 cvc 123",
		"cc:4242 4242 4242 4242 exp 12/29 cvc 123",
		"4242 4242 4242 4242 12/29 123",
		"my card is 5555555555554444, thanks",
		"378282246310005",  // Amex, 15 digits
		"6011111111111117", // Discover
		"3056930009020004", // Diners 16
		"6200000000000005", // UnionPay
		"6759649826438453", // Maestro
		"4000056655665556", // Visa debit
	}
	for _, s := range cards {
		if !HasCardNumber(s) {
			t.Errorf("HasCardNumber(%q) = false, want true", s)
		}
	}
	misses := []string{
		"tok_visa_4242",
		"tok_1NqX8d2eZvKYlo2C0a1b2c3d",
		"0193a7c2-5f1e-7c3a-9b2d-4e5f6a7b8c9d", // an order id
		"12345678-1234-1234-1234-123456789012", // a UUID of digits only
		"4006381333931",                        // EAN-13
		"4012345678901",                        // EAN-13
		"5901234123457",                        // EAN-13
		"+49 30 12345678",                      // phone numbers
		"+49 151 2345 6789",
		"+1 (415) 555-0123",
		"0049 151 23456781", // 15 digits, Luhn fails
		"4242424242424241",  // Luhn fails
		"4242 4242 4242 4243",
		"123456789012", // 12 digits
		"BRK-PAD-1042",
		"Hauptstraße 12, 10115 Berlin",
		"order 42 of 2026-12-07",
		"c-1001",
		"2026-12-07T12:34:56.789012345Z", // instants
		"2026-12-07 12:34:56.789012+01:00",
		"2026-11-26T09:00:00.123456Z and 2026-11-27T10:15:00.654321Z",
		"12345678901234567890123", // one group of 23 digits: not a card number
	}
	for _, s := range misses {
		if HasCardNumber(s) {
			t.Errorf("HasCardNumber(%q) = true, want false", s)
		}
	}
}

func TestLuhnAndGTIN(t *testing.T) {
	t.Parallel()
	ds := func(s string) []byte {
		b := make([]byte, len(s))
		for i := range s {
			b[i] = s[i] - '0'
		}
		return b
	}
	if !luhn(ds("4242424242424242")) || luhn(ds("4242424242424241")) {
		t.Error("luhn wrong on 4242...")
	}
	if !gtin13(ds("4006381333931")) || gtin13(ds("4006381333932")) {
		t.Error("gtin13 wrong on 4006381333931")
	}
	// The GTIN exemption is narrow: a 13-digit run that is Luhn-valid but not a GTIN is refused.
	if !HasCardNumber("4222222222222") {
		t.Error("the 13-digit Visa test number 4222222222222 passes")
	}
}

func TestDigitValue(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		r    rune
		want byte
	}{{'7', 7}, {'７', 7}, {'\u0667', 7}, {'\u096d', 7}, {'\U0001d7d5', 7} /* bold 7 */, {'\U0001d7f3', 7} /* monospace 7 */} {
		if got, ok := digitValue(c.r); !ok || got != c.want {
			t.Errorf("digitValue(%U) = %d, %v; want %d", c.r, got, ok, c.want)
		}
	}
	for _, r := range []rune{'a', '²', '①', 'Ⅶ'} {
		if _, ok := digitValue(r); ok {
			t.Errorf("digitValue(%U) is a digit, want not", r)
		}
	}
}

func fields(ps []Problem) map[string]Kind {
	m := map[string]Kind{}
	for _, p := range ps {
		m[p.Field()] = p.Kind
	}
	return m
}

func TestJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		doc  string
		opts Options
		want map[string]Kind
	}{
		{"clean", `{"a":"x","b":[{"c":"y"}],"n":1.5,"t":true,"z":null}`, Options{}, map[string]Kind{}},
		{"NUL escape", `{"customer_id":"c-1001\u0000x"}`, Options{}, map[string]Kind{"customer_id": KindText}},
		{"nested control", `{"shipping_address":{"name":"A\u001fB"}}`, Options{}, map[string]Kind{"shipping_address.name": KindText}},
		{"DEL and C1", `{"a":"x\u007f","b":"y\u0085"}`, Options{}, map[string]Kind{"a": KindText, "b": KindText}},
		{"newline refused", `{"a":"x\ny"}`, Options{}, map[string]Kind{"a": KindText}},
		{"newline where allowed", `{"a":"x\ny\tz","l":[{"note":"1\n2"}]}`, Options{Multiline: map[string]bool{"a": true, "l[*].note": true}}, map[string]Kind{}},
		{"NUL where newlines allowed", `{"a":"x\u0000"}`, Options{Multiline: map[string]bool{"a": true}}, map[string]Kind{"a": KindText}},
		{"digits in an issued id", `{"payment_id":"ch_012345678901000123"}`, Options{Issued: map[string]bool{"payment_id": true}}, map[string]Kind{}},
		{"card elsewhere with an issued id", `{"payment_id":"ch_1","x":"4242424242424242"}`, Options{Issued: map[string]bool{"payment_id": true}}, map[string]Kind{"x": KindCardData}},
		{"NUL in an issued id", `{"payment_id":"ch_\u0000"}`, Options{Issued: map[string]bool{"payment_id": true}}, map[string]Kind{"payment_id": KindText}},
		{"duplicate key", `{"customer_id":"a","customer_id":"b"}`, Options{}, map[string]Kind{"customer_id": KindDuplicateKey}},
		{"nested duplicate", `{"events":[{"data":{"sku":"A","sku":"B"}}]}`, Options{}, map[string]Kind{"events[0].data.sku": KindDuplicateKey}},
		{"same key in sibling objects", `{"a":{"x":1},"b":{"x":1}}`, Options{}, map[string]Kind{}},
		{"card in token", `{"payment":{"token":"tok_4242424242424242"}}`, Options{}, map[string]Kind{"payment.token": KindCardData}},
		{"card in array", `{"skus":["A","4242 4242 4242 4242"]}`, Options{}, map[string]Kind{"skus[1]": KindCardData}},
		{"escaped card", `{"a":"\u0034\u0032\u0034\u0032424242424242"}`, Options{}, map[string]Kind{"a": KindCardData}},
		{"card as key", `{"x":{"4242424242424242":1}}`, Options{}, map[string]Kind{"x": KindCardData}},
		{"control in key", `{"a\u0000":1}`, Options{}, map[string]Kind{"": KindText}},
		{"lone surrogate", `{"name":"x\ud800y"}`, Options{}, map[string]Kind{"": KindText}},
		{"surrogate pair is fine", `{"name":"\ud83d\ude00"}`, Options{}, map[string]Kind{}},
		{"escaped backslash then u", `{"name":"\\ud800"}`, Options{}, map[string]Kind{}},
		{"invalid UTF-8", "{\"name\":\"a\xffb\"}", Options{}, map[string]Kind{"": KindText}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps, err := JSON([]byte(tt.doc), tt.opts)
			if err != nil {
				t.Fatalf("JSON(%s): %v", tt.doc, err)
			}
			got := fields(ps)
			if len(got) != len(tt.want) {
				t.Fatalf("problems %+v, want fields %v", ps, tt.want)
			}
			for f, k := range tt.want {
				if got[f] != k {
					t.Errorf("field %q: kind %d, want %d (all: %+v)", f, got[f], k, ps)
				}
			}
			for _, p := range ps {
				if strings.Contains(p.Detail, "4242") || strings.Contains(p.Field(), "4242") {
					t.Errorf("problem %+v echoes the card number", p)
				}
			}
		})
	}
}

func TestJSONSyntaxErrorsStillFindCards(t *testing.T) {
	t.Parallel()
	for _, doc := range []string{`{"a":"x"`, `{"a":1}{}`, `{"a":"4242424242424242"`, `[1,`, ``} {
		ps, err := JSON([]byte(doc), Options{})
		if !errors.Is(err, ErrSyntax) {
			t.Errorf("JSON(%q): err %v, want ErrSyntax", doc, err)
		}
		if want := strings.Contains(doc, "4242"); HasCard(ps) != want {
			t.Errorf("JSON(%q): card found %v, want %v", doc, HasCard(ps), want)
		}
	}
}

func TestText(t *testing.T) {
	t.Parallel()
	if ps := Text("customer_id", "c-1001", false); len(ps) != 0 {
		t.Errorf("clean text: %+v", ps)
	}
	if ps := Text("customer_id", "c-1001\x00x", false); len(ps) != 1 || ps[0].Field() != "customer_id" || ps[0].Kind != KindText {
		t.Errorf("NUL: %+v", ps)
	}
	if ps := Text("customer_id", "c\xff", false); len(ps) != 1 || ps[0].Kind != KindText {
		t.Errorf("invalid UTF-8: %+v", ps)
	}
	if ps := Text("name", "4242-4242-4242-4242", false); len(ps) != 1 || ps[0].Kind != KindCardData {
		t.Errorf("card: %+v", ps)
	}
	if ps := (Problem{Path: []any{"a/b", 0, "c~d"}}); ps.Pointer() != "/a~1b/0/c~0d" || ps.Field() != "a/b[0].c~d" {
		t.Errorf("paths: %q %q", ps.Pointer(), ps.Field())
	}
}

// The gate runs three times per order on the intake path (idempotency pre-check, body, produced
// event); this is its cost on a typical order body.
func BenchmarkJSONOrderBody(b *testing.B) {
	doc := []byte(`{"customer_id":"c-1001","email":"buyer@example.com","priority":"standard","lines":[{"sku":"BRK-PAD-1001","quantity":2},{"sku":"FLT-OIL-2001","quantity":1}],` +
		`"payment":{"method":"card","token":"tok_1PqR7sT8uV9wX0yZ"},"shipping_address":{"name":"Ada Buyer","line1":"Hauptstr. 1","city":"Berlin","postal_code":"10115","country":"DE"}}`)
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		if ps, err := JSON(doc, Options{}); err != nil || len(ps) > 0 {
			b.Fatal(err, ps)
		}
	}
}
