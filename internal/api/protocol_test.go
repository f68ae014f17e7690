package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// The auth scheme is case-insensitive (RFC 9110 section 11.1): "bearer", "BEARER" and "Bearer"
// are one scheme, and the space after it may be more than one.
func TestAuthSchemeIsCaseInsensitive(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	path := "/v1/orders/" + uuid.NewString()
	for _, h := range []string{"Bearer " + b.reader, "bearer " + b.reader, "BEARER " + b.reader, "bEaReR  " + b.reader} {
		r := b.do(t, http.MethodGet, path, "", map[string]string{"Authorization": h}, nil)
		if r.status != http.StatusNotFound {
			t.Errorf("Authorization %q: %d %s, want 404 (authenticated, no such order)", h[:8], r.status, r.body)
		}
	}
	for _, h := range []string{"Basic " + b.reader, "Bearer", "Bearer ", b.reader, "Bearer" + b.reader} {
		r := b.do(t, http.MethodGet, path, "", map[string]string{"Authorization": h}, nil)
		if r.status != http.StatusUnauthorized || r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("Authorization %q: %d, want 401 with WWW-Authenticate", h[:min(len(h), 8)], r.status)
		}
	}
}

// Every GET route answers HEAD with the GET's status and headers and no body.
func TestHeadIsServedOnEveryGetRoute(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	placed := b.place(t, uuid.NewString(), orderBody("BRK-PAD-1001", 1))
	if placed.status != http.StatusAccepted {
		t.Fatalf("place: %d %s", placed.status, placed.body)
	}
	loc := placed.header.Get("Location")
	tests := []struct {
		path, token string
	}{
		{"/livez", ""},
		{"/readyz", ""},
		{"/v1/inventory/BRK-PAD-1001", ""},
		{"/v1/products", ""},
		{"/v1/products/BRK-PAD-1001", ""},
		{loc, b.reader},
		{"/v1/orders/" + uuid.NewString(), b.reader}, // 404 as HEAD too
		{"/v1/orders/" + uuid.NewString(), ""},       // 401 as HEAD too
		{"/v1/trade-accounts", b.account},
	}
	for _, tt := range tests {
		get := b.do(t, http.MethodGet, tt.path, tt.token, nil, nil)
		head := b.do(t, http.MethodHead, tt.path, tt.token, nil, nil)
		if head.status != get.status {
			t.Errorf("HEAD %s: %d, want %d like GET", tt.path, head.status, get.status)
		}
		if len(head.body) != 0 {
			t.Errorf("HEAD %s: %d body bytes, want none", tt.path, len(head.body))
		}
		for _, h := range []string{"Content-Type", "ETag", "Cache-Control", "WWW-Authenticate"} {
			if g, hd := get.header.Get(h), head.header.Get(h); g != hd {
				t.Errorf("HEAD %s: %s %q, GET has %q", tt.path, h, hd, g)
			}
		}
	}
}

// Path parameters are percent-decoded exactly once, whatever else the path holds: %33 is "3" in
// an order id, %3D is "=" in a customer id, and %2525 is the literal "%25".
func TestPathParametersAreDecodedOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	placed := b.place(t, uuid.NewString(), orderBody("BRK-PAD-1001", 1))
	if placed.status != http.StatusAccepted {
		t.Fatalf("place: %d %s", placed.status, placed.body)
	}
	var accepted struct {
		OrderID string `json:"order_id"`
	}
	placed.json(t, &accepted)
	// Encode every hex digit 3 of the id as %33 (and a "-" as %2D): the same order.
	encoded := strings.NewReplacer("3", "%33", "-", "%2D").Replace(accepted.OrderID)
	if r := b.do(t, http.MethodGet, "/v1/orders/"+encoded, b.reader, nil, nil); r.status != http.StatusOK {
		t.Fatalf("GET /v1/orders/%s: %d %s, want 200 (the order %s)", encoded, r.status, r.body, accepted.OrderID)
	}

	for _, tt := range []struct{ raw, id string }{
		{"garage%3D9", "garage=9"},
		{"garage%2F9", "garage/9"},
		{"garage%25", "garage%"},
		{"garage%2525", "garage%25"},
		{"g%C3%A4rage", "gärage"},
	} {
		r := b.do(t, http.MethodPut, "/v1/trade-accounts/"+tt.raw, b.account, nil, []byte(`{"name":"G"}`))
		var a struct {
			CustomerID string `json:"customer_id"`
		}
		r.json(t, &a)
		if r.status != http.StatusOK || a.CustomerID != tt.id {
			t.Errorf("PUT /v1/trade-accounts/%s: %d %s, want 200 with customer_id %q", tt.raw, r.status, r.body, tt.id)
			continue
		}
		if r := b.do(t, http.MethodDelete, "/v1/trade-accounts/"+tt.raw, b.account, nil, nil); r.status != http.StatusNoContent {
			t.Errorf("DELETE /v1/trade-accounts/%s: %d %s, want 204", tt.raw, r.status, r.body)
		}
	}
}
