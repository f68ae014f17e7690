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
