package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/orderpipe/orderpipe/internal/event"
)

// Every class of bad input gets its status and a problem document that says what is wrong, and
// none of them leaves a hold (I5) or a record on the topic.
func TestBadInputIsRefusedClearlyAndHoldsNothing(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{env: map[string]string{"ORDER_MAX_LINES": "3", "API_MAX_BODY_BYTES": "4096"}})
	valid := orderBody("BRK-PAD-1001", 1)
	mutate := func(f func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(valid, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		out, _ := json.Marshal(m)
		return out
	}
	tests := []struct {
		name       string
		token      string
		header     map[string]string
		body       []byte
		status     int
		typeSuffix string
		fields     []string // fields the problem must name
	}{
		{name: "no api key", token: "-", body: valid, status: 401, typeSuffix: "unauthorized"},
		{name: "unknown api key", token: "op_0123456789ab_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", body: valid, status: 401, typeSuffix: "unauthorized"},
		{name: "key without orders:write", token: "reader", body: valid, status: 403, typeSuffix: "forbidden"},
		{name: "no idempotency key", header: map[string]string{"Idempotency-Key": ""}, body: valid, status: 400, typeSuffix: "bad-request"},
		{name: "idempotency key with control characters", header: map[string]string{"Idempotency-Key": "a\tb"}, body: valid, status: 400, typeSuffix: "bad-request"},
		{name: "malformed json", body: []byte(`{"customer_id": "c-1",`), status: 400, typeSuffix: "bad-request"},
		{name: "not an object", body: []byte(`[1,2]`), status: 400, typeSuffix: "bad-request"},
		{name: "trailing data", body: append(append([]byte{}, valid...), []byte(`{}`)...), status: 400, typeSuffix: "bad-request"},
		{name: "body too large", body: bytes.Repeat([]byte(" "), 5000), status: 413, typeSuffix: "body-too-large"},
		{name: "not json", header: map[string]string{"Content-Type": "text/plain"}, body: valid, status: 415, typeSuffix: "unsupported-media-type"},
		{name: "unknown fields at every depth", body: mutate(func(m map[string]any) {
			m["coupon"] = "FREE"
			m["lines"].([]any)[0].(map[string]any)["price"] = 1
			m["payment"].(map[string]any)["pan"] = "none"
		}), status: 422, typeSuffix: "invalid-order", fields: []string{"coupon", "lines[0].price", "payment.pan"}},
		{name: "missing fields", body: []byte(`{"lines":[{"sku":"BRK-PAD-1001","quantity":1}]}`), status: 422, typeSuffix: "invalid-order",
			fields: []string{"customer_id", "email", "payment.method", "payment.token", "shipping_address.name", "shipping_address.line1", "shipping_address.city", "shipping_address.postal_code", "shipping_address.country"}},
		{name: "quantity zero and negative", body: orderBody("BRK-PAD-1001", 0, "FLT-OIL-2001", -2), status: 422, typeSuffix: "invalid-order", fields: []string{"lines[0].quantity", "lines[1].quantity"}},
		{name: "quantity too large", body: orderBody("BRK-PAD-1001", 1000), status: 422, typeSuffix: "invalid-order", fields: []string{"lines[0].quantity"}},
		{name: "quantity of the wrong type", body: bytes.Replace(valid, []byte(`"quantity":1`), []byte(`"quantity":"one"`), 1), status: 422, typeSuffix: "invalid-order", fields: []string{"lines[0].quantity"}},
		{name: "too many lines", body: orderBody("BRK-PAD-1001", 1, "FLT-OIL-2001", 1, "BAT-70AH-3001", 1, "WIP-600-4001", 1), status: 422, typeSuffix: "invalid-order", fields: []string{"lines"}},
		{name: "no lines", body: orderBody(), status: 422, typeSuffix: "invalid-order", fields: []string{"lines"}},
		{name: "duplicate sku lines", body: orderBody("BRK-PAD-1001", 1, "BRK-PAD-1001", 2), status: 422, typeSuffix: "invalid-order", fields: []string{"lines[1].sku"}},
		{name: "unknown and inactive skus", body: orderBody("NOPE-0000", 1, "OLD-PART-9001", 1, "BRK-PAD-1001", 1), status: 422, typeSuffix: "invalid-order", fields: []string{"lines[0].sku", "lines[1].sku"}},
		{name: "malformed sku", body: orderBody("brk pad", 1), status: 422, typeSuffix: "invalid-order", fields: []string{"lines[0].sku"}},
		{name: "bad email priority country", body: mutate(func(m map[string]any) {
			m["email"] = "not-an-email"
			m["priority"] = "overnight"
			m["shipping_address"].(map[string]any)["country"] = "Germany"
		}), status: 422, typeSuffix: "invalid-order", fields: []string{"email", "priority", "shipping_address.country"}},
		{name: "card number instead of token", body: mutate(func(m map[string]any) {
			m["payment"].(map[string]any)["token"] = "4111 1111 1111 1111"
		}), status: 422, typeSuffix: "card-data-rejected", fields: []string{"payment.token"}},
		{name: "unknown payment method", body: mutate(func(m map[string]any) {
			m["payment"].(map[string]any)["method"] = "cash"
		}), status: 422, typeSuffix: "invalid-order", fields: []string{"payment.method"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token := b.writer
			switch tt.token {
			case "-":
				token = ""
			case "reader":
				token = b.reader
			case "":
			default:
				token = tt.token
			}
			header := map[string]string{"Idempotency-Key": uuid.NewString()}
			for k, v := range tt.header {
				header[k] = v
			}
			r := b.do(t, http.MethodPost, "/v1/orders", token, header, tt.body)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			p := r.problem(t)
			if !strings.HasSuffix(p.Type, "/"+tt.typeSuffix) || p.Detail == "" {
				t.Fatalf("problem type %q detail %q, want type .../%s and a detail", p.Type, p.Detail, tt.typeSuffix)
			}
			got := p.fields()
			for _, f := range tt.fields {
				if got[f] == "" {
					t.Errorf("problem does not name field %q; it names %v", f, got)
				}
			}
			if tt.status == 401 && r.header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	if held := b.totalHeld(t, "BRK-PAD-1001", "FLT-OIL-2001", "BAT-70AH-3001", "WIP-600-4001"); held != 0 {
		t.Fatalf("%d units held after refused requests, want 0", held)
	}
	if n := len(b.records(t, event.TopicOrdersPlaced)); n != 0 {
		t.Fatalf("%d records produced by refused requests, want 0", n)
	}
}

func TestRateLimitPerKey(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{env: map[string]string{"RATE_LIMIT_PER_SECOND": "1", "RATE_LIMIT_BURST": "3"}})
	var limited response
	for i := range 10 {
		r := b.place(t, uuid.NewString(), orderBody("FLT-OIL-2001", 1))
		if r.status == http.StatusTooManyRequests {
			limited = r
			if i < 3 {
				t.Fatalf("request %d limited inside the burst of 3", i)
			}
			break
		}
		if r.status != http.StatusAccepted {
			t.Fatalf("request %d: %d %s", i, r.status, r.body)
		}
	}
	if limited.status != http.StatusTooManyRequests {
		t.Fatal("10 requests at once against 1/s with burst 3 were never limited")
	}
	if ra := limited.header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Fatalf("Retry-After %q, want a positive number of seconds", ra)
	}
	limited.problem(t)
	// Redis said when the key's next request conforms (about 1s on): until then its requests are
	// refused from memory, without a round trip, with what is left of the wait.
	const again = 5
	for i := range again {
		r := b.place(t, uuid.NewString(), orderBody("FLT-OIL-2001", 1))
		if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") != "1" {
			t.Fatalf("request %d after the refusal: %d, Retry-After %q; want 429, 1", i, r.status, r.header.Get("Retry-After"))
		}
	}
	m := b.do(t, http.MethodGet, "/metrics", "", nil, nil)
	for _, want := range []string{
		`orderpipe_http_rate_limited_total{source="redis"} 1`,
		fmt.Sprintf(`orderpipe_http_rate_limited_total{source="memory"} %d`, again),
	} {
		if !contains(m.body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// The limit is per API key: another key is not affected.
	if r := b.do(t, http.MethodGet, "/v1/orders/"+uuid.NewString(), b.reader, nil, nil); r.status != http.StatusNotFound {
		t.Fatalf("other key: %d, want 404 (not limited)", r.status)
	}
	if st := b.stockOf(t, "FLT-OIL-2001"); st.Held+st.ATP != 50 {
		t.Fatalf("atp %d + held %d != 50", st.ATP, st.Held)
	}
}
