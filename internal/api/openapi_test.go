package api_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/orderpipe/orderpipe/schemas"
)

var (
	specOnce   sync.Once
	specRouter routers.Router
	specErr    error
)

func openAPIRouter(t *testing.T) routers.Router {
	t.Helper()
	specOnce.Do(func() {
		raw, err := schemas.FS.ReadFile("openapi.yaml")
		if err != nil {
			specErr = err
			return
		}
		doc, err := openapi3.NewLoader().LoadFromData(raw)
		if err != nil {
			specErr = err
			return
		}
		doc.Servers = nil // match any host: the api under test listens on a random port
		specRouter, specErr = legacy.NewRouter(doc)
	})
	if specErr != nil {
		t.Fatalf("load schemas/openapi.yaml: %v", specErr)
	}
	return specRouter
}

// conformance wraps a transport so every request the tests send and every answer the api gives
// is checked against schemas/openapi.yaml: the documented paths, parameters, bodies, status codes
// and headers are the ones the server really uses. Requests that are deliberately invalid (the
// bad-input tests) are not checked on the way out, only their answers.
func conformance(t *testing.T, next http.RoundTripper) http.RoundTripper {
	router := openAPIRouter(t)
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		var reqBody []byte
		if req.Body != nil {
			reqBody, _ = io.ReadAll(req.Body)
			req.Body = io.NopCloser(bytes.NewReader(reqBody))
		}
		resp, err := next.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		respBody, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		resp.Body = io.NopCloser(bytes.NewReader(respBody))

		check := req.Clone(context.Background())
		check.Body = io.NopCloser(bytes.NewReader(reqBody))
		head := req.Method == http.MethodHead
		if head {
			// HEAD is served on every GET route with the GET's status and headers: check it as
			// the GET, without a body.
			check.Method = http.MethodGet
		}
		if check.URL.RawPath != "" {
			// Match the path as the server does: segment by segment on the escaped path, so an
			// escaped "/" stays inside its parameter; the parameters are decoded below.
			u := *check.URL
			u.Path, u.RawPath = check.URL.EscapedPath(), ""
			check.URL = &u
		}
		route, params, err := router.FindRoute(check)
		for k, v := range params {
			if d, err := url.PathUnescape(v); err == nil {
				params[k] = d
			}
		}
		if err != nil {
			if req.URL.Path == "/metrics" {
				return resp, nil
			}
			t.Errorf("openapi: %s %s is not in schemas/openapi.yaml: %v", req.Method, req.URL.Path, err)
			return resp, nil
		}
		in := &openapi3filter.RequestValidationInput{
			Request: check, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true},
		}
		if resp.StatusCode < 400 {
			// The server accepted it, so the spec must accept it too.
			if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
				t.Errorf("openapi: %s %s was accepted (%d) but the spec rejects the request: %v", req.Method, req.URL.Path, resp.StatusCode, err)
			}
			in.Request.Body = io.NopCloser(bytes.NewReader(reqBody))
		}
		out := &openapi3filter.ResponseValidationInput{
			RequestValidationInput: in,
			Status:                 resp.StatusCode,
			Header:                 resp.Header,
			Body:                   io.NopCloser(bytes.NewReader(respBody)),
			Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true, ExcludeResponseBody: head},
		}
		if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
			t.Errorf("openapi: answer to %s %s (%d %s) does not match the spec: %v", req.Method, req.URL.Path, resp.StatusCode, respBody, err)
		}
		return resp, nil
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
