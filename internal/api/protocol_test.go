package api_test

import (
	"net/http"
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
