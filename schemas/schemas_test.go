package schemas_test

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/orderpipe/orderpipe/schemas"
)

func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	data, err := fs.ReadFile(schemas.FS, "openapi.yaml")
	if err != nil {
		t.Fatalf("read openapi.yaml: %v", err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(data)
	if err != nil {
		t.Fatalf("load openapi.yaml: %v", err)
	}
	return doc
}

func TestOpenAPIValidates(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	if err := doc.Validate(t.Context()); err != nil {
		t.Fatalf("validate openapi.yaml: got %v, want nil", err)
	}
	if got, want := doc.OpenAPI, "3.0.3"; got != want {
		t.Fatalf("openapi version: got %q, want %q", got, want)
	}
}

// TestOpenAPIContract pins the externally promised surface: every operation, the status codes it
// documents, whether it needs the API key and which scope its description names.
func TestOpenAPIContract(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)

	tests := []struct {
		method, path string
		scope        string // "" means no authentication
		statuses     []string
		problemOnly  []string // error statuses that must answer application/problem+json
	}{
		{
			method: "POST", path: "/v1/orders", scope: "orders:write",
			statuses:    []string{"202", "400", "401", "403", "409", "413", "415", "422", "429", "503"},
			problemOnly: []string{"400", "401", "403", "409", "413", "415", "422", "429", "503"},
		},
		{
			method: "GET", path: "/v1/orders/{id}", scope: "orders:read",
			statuses:    []string{"200", "401", "403", "404"},
			problemOnly: []string{"401", "403", "404"},
		},
		{
			method: "GET", path: "/v1/inventory/{sku}",
			statuses:    []string{"200", "304", "404", "503"},
			problemOnly: []string{"404", "503"},
		},
		{
			method: "GET", path: "/v1/products",
			statuses:    []string{"200", "400"},
			problemOnly: []string{"400"},
		},
		{
			method: "GET", path: "/v1/products/{sku}",
			statuses:    []string{"200", "404"},
			problemOnly: []string{"404"},
		},
		{
			method: "PUT", path: "/v1/products/{sku}", scope: "catalog:write",
			statuses:    []string{"200", "401", "403", "422"},
			problemOnly: []string{"401", "403", "422"},
		},
		{method: "GET", path: "/livez", statuses: []string{"200"}},
		{method: "GET", path: "/readyz", statuses: []string{"200", "503"}},
		{method: "GET", path: "/metrics", statuses: []string{"200"}},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			t.Parallel()
			item := doc.Paths.Find(tt.path)
			if item == nil {
				t.Fatalf("path %s: got none, want documented", tt.path)
			}
			op := item.GetOperation(tt.method)
			if op == nil {
				t.Fatalf("%s %s: got no operation, want one", tt.method, tt.path)
			}
			for _, status := range tt.statuses {
				if op.Responses.Value(status) == nil {
					t.Fatalf("%s %s response %s: got none, want documented", tt.method, tt.path, status)
				}
			}
			for _, status := range tt.problemOnly {
				resp := op.Responses.Value(status).Value
				if resp.Content.Get("application/problem+json") == nil {
					t.Fatalf("%s %s response %s: got no application/problem+json, want Problem", tt.method, tt.path, status)
				}
			}
			needsAuth := op.Security == nil || len(*op.Security) > 0
			if got, want := needsAuth, tt.scope != ""; got != want {
				t.Fatalf("%s %s needs API key: got %v, want %v", tt.method, tt.path, got, want)
			}
			if tt.scope != "" && !strings.Contains(op.Description, "`"+tt.scope+"`") {
				t.Fatalf("%s %s description: got %q, want scope `%s` named", tt.method, tt.path, op.Description, tt.scope)
			}
		})
	}
}

func TestOpenAPIPlaceOrderHeaders(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	op := doc.Paths.Find("/v1/orders").Post

	key := op.Parameters.GetByInAndName("header", "Idempotency-Key")
	if key == nil || !key.Required {
		t.Fatalf("Idempotency-Key: got %+v, want a required header", key)
	}
	if got := op.Responses.Value("202").Value.Headers["Location"]; got == nil {
		t.Fatalf("202 Location header: got none, want documented")
	}
	for _, status := range []string{"429", "503"} {
		if got := op.Responses.Value(status).Value.Headers["Retry-After"]; got == nil {
			t.Fatalf("%s Retry-After header: got none, want documented", status)
		}
	}
	inv := doc.Paths.Find("/v1/inventory/{sku}").Get.Responses.Value("200").Value
	for _, h := range []string{"ETag", "Cache-Control"} {
		if inv.Headers[h] == nil {
			t.Fatalf("inventory 200 %s header: got none, want documented", h)
		}
	}
}

// TestOpenAPIRequestBodies checks that example and counter-example bodies are accepted and rejected
// by the request schemas, so the strictness the API promises is in the contract too.
func TestOpenAPIRequestBodies(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)

	valid := `{"customer_id":"c-1","email":"a@example.com","lines":[{"sku":"BRK-PAD-4411","quantity":2}],
		"payment":{"method":"card","token":"tok_12345678"},
		"shipping_address":{"name":"A","line1":"B 1","city":"C","postal_code":"1","country":"DE"}}`
	tests := []struct {
		name, schema, body string
		wantValid          bool
	}{
		{"minimal order", "PlaceOrderRequest", valid, true},
		{"unknown field", "PlaceOrderRequest", strings.Replace(valid, `"customer_id"`, `"price":1,"customer_id"`, 1), false},
		{"no lines", "PlaceOrderRequest", strings.Replace(valid, `[{"sku":"BRK-PAD-4411","quantity":2}]`, `[]`, 1), false},
		{"quantity zero", "PlaceOrderRequest", strings.Replace(valid, `"quantity":2`, `"quantity":0`, 1), false},
		{"lowercase sku", "PlaceOrderRequest", strings.Replace(valid, `BRK-PAD-4411`, `brk-pad`, 1), false},
		{"bad priority", "PlaceOrderRequest", strings.Replace(valid, `"customer_id"`, `"priority":"urgent","customer_id"`, 1), false},
		{"unknown payment method", "PlaceOrderRequest", strings.Replace(valid, `"card"`, `"cash"`, 1), false},
		{"product", "ProductInput", `{"name":"Oil filter","category":"filters","brand":"Mann","price_minor":899,"currency":"EUR","active":true}`, true},
		{"product free price", "ProductInput", `{"name":"Oil filter","category":"filters","brand":"Mann","price_minor":0,"currency":"EUR","active":true}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ref := doc.Components.Schemas[tt.schema]
			if ref == nil {
				t.Fatalf("schema %s: got none, want defined", tt.schema)
			}
			var v any
			if err := json.Unmarshal([]byte(tt.body), &v); err != nil {
				t.Fatalf("test body: %v", err)
			}
			err := ref.Value.VisitJSON(v)
			if got := err == nil; got != tt.wantValid {
				t.Fatalf("valid: got %v (%v), want %v", got, err, tt.wantValid)
			}
		})
	}
}

func eventSchemaFiles(t *testing.T) []string {
	t.Helper()
	files, err := fs.Glob(schemas.FS, "*.json")
	if err != nil {
		t.Fatalf("glob schemas: %v", err)
	}
	if len(files) == 0 {
		t.Fatalf("event schemas: got none, want at least one")
	}
	return files
}

func TestEventSchemasCompile(t *testing.T) {
	t.Parallel()
	for _, name := range eventSchemaFiles(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			data, err := fs.ReadFile(schemas.FS, name)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			obj := doc.(map[string]any)
			if got, want := obj["$schema"], "https://json-schema.org/draft/2020-12/schema"; got != want {
				t.Fatalf("$schema: got %v, want %v", got, want)
			}
			if got, want := obj["$id"], "https://schemas.orderpipe.dev/"+name; got != want {
				t.Fatalf("$id: got %v, want %v", got, want)
			}
			c := jsonschema.NewCompiler()
			c.AssertFormat()
			if err := c.AddResource(name, doc); err != nil {
				t.Fatalf("add resource: %v", err)
			}
			if _, err := c.Compile(name); err != nil {
				t.Fatalf("compile: %v", err)
			}
			for _, ptr := range openObjects(obj, "") {
				t.Errorf("object schema at %q: got additionalProperties not false, want false", ptr)
			}
		})
	}
}

// openObjects returns the locations of object schemas that allow unknown properties.
func openObjects(v any, ptr string) []string {
	var open []string
	switch v := v.(type) {
	case map[string]any:
		if _, hasProps := v["properties"]; hasProps || v["type"] == "object" {
			if v["additionalProperties"] != false {
				open = append(open, ptr)
			}
		}
		for k, child := range v {
			open = append(open, openObjects(child, ptr+"/"+k)...)
		}
	case []any:
		for i, child := range v {
			open = append(open, openObjects(child, ptr+"/"+strconv.Itoa(i))...)
		}
	}
	return open
}

// TestEventAndAPIShapesAgree guards against drift between the request the API accepts and the event
// it publishes: payment and address must have the same fields and required fields in both.
func TestEventAndAPIShapesAgree(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	data, err := fs.ReadFile(schemas.FS, "order-placed.v1.json")
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var event struct {
		Defs map[string]struct {
			Properties map[string]json.RawMessage `json:"properties"`
			Required   []string                   `json:"required"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(data, &event); err != nil {
		t.Fatalf("parse: %v", err)
	}
	for api, def := range map[string]string{"Payment": "payment", "Address": "address"} {
		apiSchema := doc.Components.Schemas[api].Value
		eventSchema := event.Defs[def]
		apiProps := sortedKeys(apiSchema.Properties)
		eventProps := sortedKeys(eventSchema.Properties)
		if !slices.Equal(apiProps, eventProps) {
			t.Errorf("%s properties: got API %v, event %v, want equal", api, apiProps, eventProps)
		}
		apiReq := slices.Sorted(slices.Values(apiSchema.Required))
		eventReq := slices.Sorted(slices.Values(eventSchema.Required))
		if !slices.Equal(apiReq, eventReq) {
			t.Errorf("%s required: got API %v, event %v, want equal", api, apiReq, eventReq)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func TestTestdataFoldersMatchSchemas(t *testing.T) {
	t.Parallel()
	// Every schema version must have frozen examples, which internal/event validates.
	for _, name := range eventSchemaFiles(t) {
		event, version, ok := strings.Cut(strings.TrimSuffix(name, ".json"), ".")
		if !ok {
			t.Fatalf("schema file %s: got no version, want <event>.v<N>.json", name)
		}
		matches, err := fs.Glob(os.DirFS("testdata"), path.Join(event, version+"-*.json"))
		if err != nil {
			t.Fatalf("glob: %v", err)
		}
		if len(matches) == 0 {
			t.Fatalf("testdata/%s/%s-*.json: got none, want frozen examples", event, version)
		}
	}
}
