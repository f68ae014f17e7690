package api_test

import (
	"bytes"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/orderpipe/orderpipe/internal/auth"
	"github.com/orderpipe/orderpipe/internal/postgres"
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

// newKey creates an API key with scopes and waits until the api's key cache knows it (the
// bundle must run with a short CATALOG_REFRESH_INTERVAL).
func newKey(t *testing.T, b *bundle, path string, scopes ...string) string {
	t.Helper()
	tok, k, err := auth.Generate("test", scopes)
	if err != nil {
		t.Fatal(err)
	}
	if err := postgres.NewKeyStore(b.pool).Create(t.Context(), postgres.APIKey{ID: k.ID, Name: k.Name, SecretHash: k.SecretHash, Scopes: k.Scopes}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for b.do(t, http.MethodGet, path, tok, nil, nil).status == http.StatusUnauthorized {
		if time.Now().After(deadline) {
			t.Fatal("the api did not learn the new key")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return tok
}

// Every query parameter of every route is held to its limits in schemas/openapi.yaml: a value out
// of range, too long, not in the enum, of the wrong type or given twice is 400 bad-request naming
// the parameter, and a cursor the api did not issue is 400 too (it used to read as an empty page).
func TestQueryParametersWithinOpenAPILimits(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{env: map[string]string{"CATALOG_REFRESH_INTERVAL": "100ms"}})
	reports := newKey(t, b, "/v1/reports/sales", auth.ScopeReportsRead)
	long := strings.Repeat("c", 1000)
	tests := []struct {
		path, token string
		field       string // "" when the handler refuses it (a well-formed cursor it did not issue)
	}{
		{"/v1/products?cursor=garbage", "", ""},
		{"/v1/products?cursor=" + url.QueryEscape("not base64!"), "", "cursor"},
		{"/v1/products?category=" + long, "", "category"},
		{"/v1/products?category=", "", "category"},
		{"/v1/products?brand=" + strings.Repeat("b", 101), "", "brand"},
		{"/v1/products?limit=0", "", "limit"},
		{"/v1/products?limit=201", "", "limit"},
		{"/v1/products?limit=ten", "", "limit"},
		{"/v1/products?category=brakes&category=filters", "", "category"},
		{"/v1/products?fields=" + strings.Repeat("name,", 60), "", "fields"},
		{"/v1/products/BRK-PAD-1001?fields=" + strings.Repeat("name,", 60), "", "fields"},
		{"/v1/promotions?status=soon", b.catalog, "status"},
		{"/v1/reports/promotions?promotion_id=" + url.QueryEscape("Winter Sale"), reports, "promotion_id"},
		{"/v1/reports/sales?group_by=week", reports, "group_by"},
		{"/v1/reports/sales?limit=1001", reports, "limit"},
		{"/v1/reports/sales?from=yesterday", reports, "from"},
		{"/v1/reports/sales?cursor=garbage", reports, ""},
	}
	for _, tt := range tests {
		r := b.do(t, http.MethodGet, tt.path, tt.token, nil, nil)
		if r.status != http.StatusBadRequest {
			t.Errorf("GET %.80s: %d %.200s, want 400", tt.path, r.status, r.body)
			continue
		}
		p := r.problem(t)
		if p.Type != "https://orderpipe.dev/problems/bad-request" {
			t.Errorf("GET %.80s: problem type %s, want bad-request", tt.path, p.Type)
		}
		if tt.field != "" && p.fields()[tt.field] == "" {
			t.Errorf("GET %.80s: problem names %v, want %s", tt.path, p.fields(), tt.field)
		}
		if bytes.Contains(r.body, []byte(long)) {
			t.Errorf("GET %.80s: the answer repeats the 1,000-character value", tt.path)
		}
	}
	for _, path := range []string{
		"/v1/products?category=brakes&brand=Bosch&limit=2&fields=name,%20price_minor",
		"/v1/products?utm_source=newsletter", // parameters the route does not define are ignored
		"/v1/promotions?status=live",
	} {
		tok := ""
		if strings.HasPrefix(path, "/v1/promotions") {
			tok = b.catalog
		}
		if r := b.do(t, http.MethodGet, path, tok, nil, nil); r.status != http.StatusOK {
			t.Errorf("GET %s: %d %s, want 200", path, r.status, r.body)
		}
	}
}

// GET of a dead-lettered order shows a stable error class and a short public message, never
// the internal error (here a Postgres error with its SQLSTATE): that stays with ops.
func TestDeadLetteredOrderShowsNoInternals(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	ctx := t.Context()
	var ids []string
	for range 3 {
		r := b.place(t, uuid.NewString(), orderBody("BRK-PAD-1001", 1))
		var a struct {
			OrderID string `json:"order_id"`
		}
		r.json(t, &a)
		ids = append(ids, a.OrderID)
	}
	const internal = `apply batch: write orders: ERROR: invalid byte sequence for encoding "UTF8": 0x00 (SQLSTATE 22021)`
	store := postgres.NewProcessingStore(b.pool)
	for i, class := range []string{"permanent", "transient", "something-new"} {
		if err := store.RecordDeadLetter(ctx, postgres.DeadLetter{
			OrderID: ids[i], EventID: "ev-" + ids[i], SourceTopic: "orders.placed", ErrorClass: class, Error: internal,
		}); err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range []string{"permanent", "transient", "permanent"} {
		r := b.do(t, http.MethodGet, "/v1/orders/"+ids[i], b.reader, nil, nil)
		var v struct {
			Status     string `json:"status"`
			DeadLetter *struct {
				ErrorClass string    `json:"error_class"`
				Error      string    `json:"error"`
				At         time.Time `json:"at"`
			} `json:"dead_letter"`
		}
		r.json(t, &v)
		if r.status != http.StatusOK || v.Status != "pending" || v.DeadLetter == nil {
			t.Fatalf("GET dead-lettered order: %d %s", r.status, r.body)
		}
		if v.DeadLetter.ErrorClass != want || v.DeadLetter.Error == "" || v.DeadLetter.At.IsZero() {
			t.Errorf("dead_letter %+v, want class %s, a message and a time", *v.DeadLetter, want)
		}
		for _, leak := range []string{"SQLSTATE", "UTF8", "0x00", "apply batch", "something-new"} {
			if strings.Contains(string(r.body), leak) {
				t.Errorf("the answer shows internals (%q): %s", leak, r.body)
			}
		}
	}
}

// Every answer of a rate-limited route carries the IETF RateLimit-Policy and RateLimit fields
// (draft-ietf-httpapi-ratelimit-headers): the policy (quota q in window w seconds), what is left
// (r) and when it resets (t); a refusal says r=0 with t equal to its Retry-After.
func TestRateLimitHeaderFields(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{env: map[string]string{"RATE_LIMIT_PER_SECOND": "1", "RATE_LIMIT_BURST": "3"}})
	field := regexp.MustCompile(`^"default";r=(\d+);t=(\d+)$`)
	path := "/v1/orders/" + uuid.NewString()
	var limited response
	for i := range 6 {
		r := b.do(t, http.MethodGet, path, b.reader, nil, nil)
		if got := r.header.Get("RateLimit-Policy"); got != `"default";q=3;w=3` {
			t.Fatalf("request %d (%d): RateLimit-Policy %q, want \"default\";q=3;w=3", i, r.status, got)
		}
		m := field.FindStringSubmatch(r.header.Get("RateLimit"))
		if m == nil {
			t.Fatalf("request %d (%d): RateLimit %q, want \"default\";r=<n>;t=<n>", i, r.status, r.header.Get("RateLimit"))
		}
		if r.status == http.StatusTooManyRequests {
			if m[1] != "0" || m[2] != r.header.Get("Retry-After") || m[2] == "0" {
				t.Fatalf("refusal: RateLimit %q, Retry-After %q; want r=0 and t equal to Retry-After", r.header.Get("RateLimit"), r.header.Get("Retry-After"))
			}
			limited = r
			break
		}
		if want := strconv.Itoa(2 - i); r.status != http.StatusNotFound || m[1] != want || m[2] == "0" {
			t.Fatalf("request %d: %d, RateLimit %q; want 404 with r=%s and t > 0", i, r.status, r.header.Get("RateLimit"), want)
		}
	}
	if limited.status != http.StatusTooManyRequests {
		t.Fatal("6 requests against a burst of 3 at 1/s were never limited")
	}
	// Routes without a limit say nothing about one.
	if r := b.do(t, http.MethodGet, "/v1/products", "", nil, nil); r.header.Get("RateLimit") != "" || r.header.Get("RateLimit-Policy") != "" {
		t.Fatalf("GET /v1/products: RateLimit %q, RateLimit-Policy %q; want neither", r.header.Get("RateLimit"), r.header.Get("RateLimit-Policy"))
	}
}

// 3,000 requests without a key or with a wrong one, from one address: after the burst they are
// answered 429 (too-many-auth-failures, Retry-After, RateLimit fields) instead of 401, almost all
// from memory without a Redis round trip, and never with a Postgres query (keys are checked in
// process). A valid key from the same address is not refused, and X-Forwarded-For does not let a
// client pick another address unless API_TRUSTED_PROXIES says its peer is a load balancer.
func TestFailedAuthenticationIsRateLimitedPerAddress(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{env: map[string]string{"AUTH_FAILURE_RATE_PER_SECOND": "1", "AUTH_FAILURE_BURST": "20"}})
	path := "/v1/orders/" + uuid.NewString()
	plain := &http.Client{Timeout: 5 * time.Second}
	flood := func(url string, n int, xff string) (unauthorized, limited int) {
		t.Helper()
		for i := range n {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if i%2 == 1 {
				req.Header.Set("Authorization", "Bearer op_0123456789ab_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
			}
			if xff != "" {
				req.Header.Set("X-Forwarded-For", xff)
			}
			resp, err := plain.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			switch resp.StatusCode {
			case http.StatusUnauthorized:
				unauthorized++
			case http.StatusTooManyRequests:
				limited++
			default:
				t.Fatalf("request %d: %d, want 401 or 429", i, resp.StatusCode)
			}
		}
		return unauthorized, limited
	}
	start := time.Now()
	unauthorized, limited := flood(b.url, 3000, "")
	// The burst, plus one per second the flood took, plus slack for rounding.
	if most := 20 + int(time.Since(start).Seconds()) + 2; unauthorized > most || limited != 3000-unauthorized {
		t.Fatalf("3,000 failed authentications in %s: %d answered 401, %d 429; want at most %d 401", time.Since(start).Round(time.Millisecond), unauthorized, limited, most)
	}
	t.Logf("3,000 failed authentications in %s: %d x 401, %d x 429", time.Since(start).Round(time.Millisecond), unauthorized, limited)

	r := b.do(t, http.MethodGet, path, "", map[string]string{"X-Forwarded-For": "203.0.113.9"}, nil)
	if r.status != http.StatusTooManyRequests {
		t.Fatalf("with X-Forwarded-For: %d, want 429 (the header is not trusted by default)", r.status)
	}
	if p := r.problem(t); p.Type != "https://orderpipe.dev/problems/too-many-auth-failures" {
		t.Fatalf("problem type %s, want too-many-auth-failures", p.Type)
	}
	ra := r.header.Get("Retry-After")
	if ra == "" || ra == "0" || r.header.Get("RateLimit") != `"auth-failures";r=0;t=`+ra || r.header.Get("RateLimit-Policy") != `"auth-failures";q=20;w=20` {
		t.Fatalf("Retry-After %q, RateLimit %q, RateLimit-Policy %q; want r=0 with t = Retry-After, q=20;w=20", ra, r.header.Get("RateLimit"), r.header.Get("RateLimit-Policy"))
	}
	if r := b.do(t, http.MethodGet, path, b.reader, nil, nil); r.status != http.StatusNotFound {
		t.Fatalf("a valid key from the limited address: %d, want 404 (authenticated)", r.status)
	}
	m := b.do(t, http.MethodGet, "/metrics", "", nil, nil)
	memory := regexp.MustCompile(`orderpipe_http_auth_failures_total\{outcome="limited_memory"\} (\d+)`).FindSubmatch(m.body)
	if memory == nil {
		t.Fatal("/metrics lacks orderpipe_http_auth_failures_total{outcome=\"limited_memory\"}")
	}
	if n, _ := strconv.Atoi(string(memory[1])); n < limited-int(time.Since(start).Seconds())-5 {
		t.Fatalf("%d of %d refusals answered from memory, want all but about one per second", n, limited)
	}

	// Behind a trusted load balancer the client is the X-Forwarded-For address: one client's
	// failures do not limit another's.
	lb := setup(t, setupOpts{env: map[string]string{"AUTH_FAILURE_RATE_PER_SECOND": "1", "AUTH_FAILURE_BURST": "5", "API_TRUSTED_PROXIES": "127.0.0.1/32"}})
	if _, limited := flood(lb.url, 20, "198.51.100.7"); limited == 0 {
		t.Fatal("20 failures of 198.51.100.7 behind a trusted proxy were never limited")
	}
	if u, l := flood(lb.url, 1, "203.0.113.9"); u != 1 || l != 0 {
		t.Fatalf("another client behind the same proxy: %d x 401, %d x 429; want its own budget (401)", u, l)
	}
}
