package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/orderpipe/orderpipe/internal/auth"
	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/httpapi"
	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/schemas"
)

// warehouseKey creates an API key with inventory:write and waits until the api's key cache
// (refreshed every CATALOG_REFRESH_INTERVAL) knows it.
func warehouseKey(t *testing.T, b *bundle) string {
	t.Helper()
	tok, k, err := auth.Generate("warehouse", []string{auth.ScopeInventoryWrite})
	if err != nil {
		t.Fatal(err)
	}
	if err := postgres.NewKeyStore(b.pool).Create(t.Context(), postgres.APIKey{ID: k.ID, Name: k.Name, SecretHash: k.SecretHash, Scopes: k.Scopes}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := b.do(t, http.MethodPost, "/v1/warehouse/stock", tok, nil, []byte(`{"events":[]}`))
		if r.status != http.StatusUnauthorized {
			return tok
		}
		if time.Now().After(deadline) {
			t.Fatalf("the api did not learn the new key: %d %s", r.status, r.body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func stockBody(events ...string) []byte {
	return []byte(`{"events":[` + strings.Join(events, ",") + `]}`)
}

func levelEvent(id, wh, sku string, seq, onHand int) string {
	return fmt.Sprintf(`{"id":%q,"type":"com.orderpipe.stock.level","data":{"warehouse_id":%q,"sku":%q,"seq":%d,"occurred_at":"2026-11-26T09:00:00Z","on_hand":%d}}`, id, wh, sku, seq, onHand)
}

// webhookSetup starts an api with the given warehouses registered (WH-1, unsigned, when none
// are given) and returns it with a key that has inventory:write.
func webhookSetup(t *testing.T, ws ...postgres.Warehouse) (*bundle, string) {
	t.Helper()
	if len(ws) == 0 {
		ws = []postgres.Warehouse{{ID: "WH-1"}}
	}
	b := setup(t, setupOpts{env: map[string]string{"CATALOG_REFRESH_INTERVAL": "100ms", "KAFKA_PRODUCE_TIMEOUT": "1s"}, warehouses: ws})
	return b, warehouseKey(t, b)
}

// The webhook writes each event to inventory.stock exactly as a Kafka producer would: keyed by
// SKU, with CloudEvents headers, the data compacted, and answers 202 after the broker acked.
func TestWarehouseWebhookPublishesEvents(t *testing.T) {
	t.Parallel()
	b, tok := webhookSetup(t)
	body := []byte(`{"events": [
  ` + levelEvent("wh1-1", "WH-1", "BRK-PAD-1001", 1, 40) + `,
  {"id": "wh1-2", "type": "com.orderpipe.stock.adjusted",
   "data": {"warehouse_id": "WH-1", "sku": "FLT-OIL-2001", "seq": 2, "occurred_at": "2026-11-26T10:00:00+01:00", "delta": -3, "reason": "damaged"}},
  {"id": "wh1-3", "type": "com.orderpipe.stock.shipped",
   "data": {"warehouse_id": "WH-1", "sku": "BRK-PAD-1001", "seq": 3, "occurred_at": "2026-11-26T11:00:00Z", "order_id": "01936f4e-6b1c-7a4e-9c2b-3f1e2d4c5b6a", "quantity": 2}}
]}`)
	r := b.do(t, http.MethodPost, "/v1/warehouse/stock", tok, nil, body)
	if r.status != http.StatusAccepted {
		t.Fatalf("got %d %s, want 202", r.status, r.body)
	}
	var acc struct {
		WarehouseID string `json:"warehouse_id"`
		Accepted    int    `json:"accepted"`
	}
	if err := json.Unmarshal(r.body, &acc); err != nil || acc.WarehouseID != "WH-1" || acc.Accepted != 3 {
		t.Fatalf("answer: got %s (%v), want WH-1 with 3 accepted", r.body, err)
	}
	v, err := event.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	recs := b.records(t, event.TopicInventoryStock)
	if len(recs) != 3 {
		t.Fatalf("got %d records, want 3", len(recs))
	}
	byID := map[string]event.StockEvent{}
	for _, rec := range recs {
		env, err := event.FromRecord(rec)
		if err != nil {
			t.Fatal(err)
		}
		e, err := event.DecodeStock(v, env)
		if err != nil {
			t.Fatalf("record %s: %v", env.ID, err)
		}
		if string(rec.Key) != e.SKU || env.Source != "warehouse/WH-1" || !env.Time.Equal(e.OccurredAt) || env.DataSchema == "" {
			t.Fatalf("record %s: key %q source %q time %v schema %q; want the SKU, warehouse/WH-1, occurred_at, a schema", env.ID, rec.Key, env.Source, env.Time, env.DataSchema)
		}
		if bytes.ContainsAny(rec.Value, " \n") {
			t.Fatalf("record %s: value %q, want compact JSON (one line for kcat)", env.ID, rec.Value)
		}
		byID[env.ID] = e
	}
	if e := byID["wh1-2"]; e.Type != event.TypeStockAdjusted || e.Delta != -3 || e.Seq != 2 {
		t.Fatalf("wh1-2: got %+v, want the adjustment", e)
	}
	if e := byID["wh1-3"]; e.Type != event.TypeStockShipped || e.Quantity != 2 {
		t.Fatalf("wh1-3: got %+v, want the shipment", e)
	}
}

// A warehouse with a secret must sign: missing, wrong, malformed and stale signatures are 401
// with a problem saying which, and nothing is published; a secret being rotated may be sent as
// two v1 values.
func TestWarehouseWebhookSignatures(t *testing.T) {
	t.Parallel()
	secret := []byte("whsec-0123456789abcdef")
	b, tok := webhookSetup(t, postgres.Warehouse{ID: "WH-SIGNED", Secret: secret}, postgres.Warehouse{ID: "WH-OPEN"})
	body := stockBody(levelEvent("s-1", "WH-SIGNED", "BRK-PAD-1001", 1, 5))
	now := time.Now()
	good := httpapi.SignWarehouseBody(secret, body, now)
	otherSecret := httpapi.SignWarehouseBody([]byte("whsec-another-secret!!"), body, now)
	_, otherV1, _ := strings.Cut(otherSecret, ",")
	tests := []struct {
		name, sig, slug string
		body            []byte
		status          int
	}{
		{"no signature", "", "signature-required", body, 401},
		{"wrong secret", otherSecret, "invalid-signature", body, 401},
		{"another body", good, "invalid-signature", stockBody(levelEvent("s-1", "WH-SIGNED", "BRK-PAD-1001", 1, 500)), 401},
		{"malformed", "v1=abc", "invalid-signature", body, 401},
		{"six minutes old", httpapi.SignWarehouseBody(secret, body, now.Add(-6*time.Minute)), "signature-expired", body, 401},
		{"six minutes ahead", httpapi.SignWarehouseBody(secret, body, now.Add(6*time.Minute)), "signature-expired", body, 401},
		{"a warehouse without a secret, signed", good, "invalid-signature", stockBody(levelEvent("o-1", "WH-OPEN", "BRK-PAD-1001", 1, 5)), 401},
		{"four minutes old", httpapi.SignWarehouseBody(secret, body, now.Add(-4*time.Minute)), "", body, 202},
		{"rotation: old and new v1", good + "," + otherV1, "", body, 202},
		{"a warehouse without a secret, unsigned", "", "", stockBody(levelEvent("o-1", "WH-OPEN", "BRK-PAD-1001", 1, 5)), 202},
		{"an unregistered warehouse, unsigned", "", "unknown-warehouse", stockBody(levelEvent("n-1", "WH-NEW", "BRK-PAD-1001", 1, 5)), 403},
		{"an unregistered warehouse, signed", good, "unknown-warehouse", stockBody(levelEvent("n-1", "WH-NEW", "BRK-PAD-1001", 1, 5)), 403},
	}
	published := 0
	for _, tt := range tests {
		r := b.do(t, http.MethodPost, "/v1/warehouse/stock", tok, map[string]string{httpapi.SignatureHeader: tt.sig}, tt.body)
		if r.status != tt.status {
			t.Fatalf("%s: got %d %s, want %d", tt.name, r.status, r.body, tt.status)
		}
		if tt.status == 202 {
			published++
			continue
		}
		if p := r.problem(t); p.Type != "https://orderpipe.dev/problems/"+tt.slug {
			t.Fatalf("%s: got problem %s (%s), want %s", tt.name, p.Type, p.Detail, tt.slug)
		}
	}
	if n := len(b.records(t, event.TopicInventoryStock)); n != published {
		t.Fatalf("got %d records, want %d (only the accepted requests)", n, published)
	}
}

// Only registered warehouses change stock: a key with inventory:write posting for a warehouse
// nobody registered (WH-FAKE) is refused with 403 unknown-warehouse and publishes nothing, so
// availability stays what it was. A warehouse registered while the api runs is accepted once
// the registry reloads (CATALOG_REFRESH_INTERVAL), without a restart.
func TestWarehouseWebhookRefusesUnregisteredWarehouses(t *testing.T) {
	t.Parallel()
	b, tok := webhookSetup(t)
	before := b.stockOf(t, "BRK-PAD-1001")
	body := stockBody(levelEvent("fake-1", "WH-FAKE", "BRK-PAD-1001", 1, 1000))
	r := b.do(t, http.MethodPost, "/v1/warehouse/stock", tok, nil, body)
	if r.status != http.StatusForbidden {
		t.Fatalf("WH-FAKE: got %d %s, want 403", r.status, r.body)
	}
	if p := r.problem(t); p.Type != "https://orderpipe.dev/problems/unknown-warehouse" || !strings.Contains(p.Detail, "WH-FAKE") {
		t.Fatalf("WH-FAKE: got problem %s (%s), want unknown-warehouse naming the warehouse", p.Type, p.Detail)
	}
	if n := len(b.records(t, event.TopicInventoryStock)); n != 0 {
		t.Fatalf("got %d records on %s, want none", n, event.TopicInventoryStock)
	}
	if got := b.do(t, http.MethodGet, "/v1/inventory/BRK-PAD-1001", "", nil, nil); !contains(got.body, fmt.Sprintf(`"available":%d`, before.ATP)) {
		t.Fatalf("availability after WH-FAKE: %s, want %d as before", got.body, before.ATP)
	}

	if _, err := postgres.NewInventoryStore(b.pool).AddWarehouse(t.Context(), postgres.Warehouse{ID: "WH-FAKE"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := b.do(t, http.MethodPost, "/v1/warehouse/stock", tok, nil, body)
		if r.status == http.StatusAccepted {
			break
		}
		if r.status != http.StatusForbidden || time.Now().After(deadline) {
			t.Fatalf("after registering WH-FAKE: got %d %s, want 202 within the refresh interval", r.status, r.body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Bad requests name every bad field and publish nothing.
func TestWarehouseWebhookRejectsBadEvents(t *testing.T) {
	t.Parallel()
	b, tok := webhookSetup(t)
	ok := levelEvent("e-1", "WH-1", "BRK-PAD-1001", 1, 5)
	many := make([]string, httpapi.MaxWarehouseEvents+1)
	for i := range many {
		many[i] = `{"id":"x","type":"t","data":{}}`
	}
	tests := []struct {
		name   string
		body   []byte
		ctype  string
		status int
		fields []string
	}{
		{"no events", stockBody(), "", 422, []string{"events"}},
		{"too many events", stockBody(many...), "", 422, []string{"events"}},
		{"unknown top-level field", []byte(`{"events":[` + ok + `],"batch":1}`), "", 422, []string{"batch"}},
		{"unknown event field", stockBody(strings.Replace(ok, `"type"`, `"time":"now","type"`, 1)), "", 422, []string{"events[0].time"}},
		{"unknown data field", stockBody(strings.Replace(ok, `"on_hand":5`, `"on_hand":5,"bin":"A1"`, 1)), "", 422, []string{"events[0].data.bin"}},
		{"negative level, missing seq", stockBody(strings.Replace(strings.Replace(ok, `"on_hand":5`, `"on_hand":-5`, 1), `"seq":1,`, ``, 1)), "", 422, []string{"events[0].data.on_hand", "events[0].data.seq"}},
		{"not a stock type", stockBody(strings.Replace(ok, "com.orderpipe.stock.level", "com.orderpipe.order.placed", 1)), "", 422, []string{"events[0].type"}},
		{"no id", stockBody(strings.Replace(ok, `"id":"e-1"`, `"id":""`, 1)), "", 422, []string{"events[0].id"}},
		{"id with a space", stockBody(strings.Replace(ok, `"id":"e-1"`, `"id":"e 1"`, 1)), "", 422, []string{"events[0].id"}},
		{"no data", stockBody(`{"id":"e-1","type":"com.orderpipe.stock.level","data":null}`), "", 422, []string{"events[0].data"}},
		{"SKU not in the catalog", stockBody(levelEvent("e-1", "WH-1", "NOPE-0001", 1, 5)), "", 422, []string{"events[0].data.sku"}},
		{"two warehouses", stockBody(ok, levelEvent("e-2", "WH-2", "BRK-PAD-1001", 2, 5)), "", 422, []string{"events[1].data.warehouse_id"}},
		{"malformed JSON", []byte(`{"events":[`), "", 400, nil},
		{"not JSON", []byte(`events=1`), "text/plain", 415, nil},
		{"too large", stockBody(strings.Repeat(ok+",", 449) + ok), "", 413, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h map[string]string
			if tt.ctype != "" {
				h = map[string]string{"Content-Type": tt.ctype}
			}
			r := b.do(t, http.MethodPost, "/v1/warehouse/stock", tok, h, tt.body)
			if r.status != tt.status {
				t.Fatalf("got %d %s, want %d", r.status, r.body, tt.status)
			}
			p := r.problem(t)
			got := p.fields()
			for _, f := range tt.fields {
				if _, ok := got[f]; !ok {
					t.Fatalf("problem fields: got %v, want %s named", got, f)
				}
			}
			if tt.status == 422 && p.Type != "https://orderpipe.dev/problems/invalid-stock-events" {
				t.Fatalf("problem type: got %s, want invalid-stock-events", p.Type)
			}
		})
	}
	if n := len(b.records(t, event.TopicInventoryStock)); n != 0 {
		t.Fatalf("got %d records, want none", n)
	}
}

func TestWarehouseWebhookAuthAndBroker(t *testing.T) {
	t.Parallel()
	b, tok := webhookSetup(t)
	body := stockBody(levelEvent("e-1", "WH-1", "BRK-PAD-1001", 1, 5))
	if r := b.do(t, http.MethodPost, "/v1/warehouse/stock", "", nil, body); r.status != http.StatusUnauthorized {
		t.Fatalf("no key: got %d, want 401", r.status)
	}
	if r := b.do(t, http.MethodPost, "/v1/warehouse/stock", b.writer, nil, body); r.status != http.StatusForbidden {
		t.Fatalf("a checkout key: got %d, want 403", r.status)
	}
	fault := b.kafka.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.NotEnoughReplicas, Count: -1})
	r := b.do(t, http.MethodPost, "/v1/warehouse/stock", tok, nil, body)
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Fatalf("broker refusing: got %d %s, want 503 with Retry-After", r.status, r.body)
	}
	fault.Remove()
	if r := b.do(t, http.MethodPost, "/v1/warehouse/stock", tok, nil, body); r.status != http.StatusAccepted {
		t.Fatalf("after recovery: got %d %s, want 202", r.status, r.body)
	}
}

// The webhook's data shapes in the OpenAPI document and the event schemas agree: the same
// properties and required fields, so what the webhook documents is what inventory-sync takes.
func TestWarehouseWebhookShapesMatchEventSchemas(t *testing.T) {
	t.Parallel()
	raw, err := schemas.FS.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(raw)
	if err != nil {
		t.Fatal(err)
	}
	for api, file := range map[string]string{"StockLevelData": "stock-level.v1.json", "StockAdjustedData": "stock-adjusted.v1.json", "StockShippedData": "stock-shipped.v1.json"} {
		data, err := fs.ReadFile(schemas.FS, file)
		if err != nil {
			t.Fatal(err)
		}
		var js struct {
			Properties map[string]json.RawMessage `json:"properties"`
			Required   []string                   `json:"required"`
		}
		if err := json.Unmarshal(data, &js); err != nil {
			t.Fatal(err)
		}
		s := doc.Components.Schemas[api].Value
		var apiProps, jsProps []string
		for k := range s.Properties {
			apiProps = append(apiProps, k)
		}
		for k := range js.Properties {
			jsProps = append(jsProps, k)
		}
		slices.Sort(apiProps)
		slices.Sort(jsProps)
		apiReq, jsReq := slices.Sorted(slices.Values(s.Required)), slices.Sorted(slices.Values(js.Required))
		if !slices.Equal(apiProps, jsProps) || !slices.Equal(apiReq, jsReq) {
			t.Fatalf("%s vs %s: properties %v vs %v, required %v vs %v", api, file, apiProps, jsProps, apiReq, jsReq)
		}
	}
}

// The README's signed webhook example (For warehouse integrators), run as written with sh,
// openssl and curl, is accepted and lands on inventory.stock.
func TestReadmeWebhookExampleIsAccepted(t *testing.T) {
	t.Parallel()
	secret := "whsec-readme-example-0123"
	b, tok := webhookSetup(t, postgres.Warehouse{ID: "WH-BER-1", Secret: []byte(secret)})
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), "<!-- webhook:begin -->")
	script, _, ok2 := strings.Cut(after, "<!-- webhook:end -->")
	if !ok || !ok2 {
		t.Fatalf("README has no webhook block")
	}
	script = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(script), "```sh"), "```")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-ec", script)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "ORDERPIPE_URL=" + b.url, "ORDERPIPE_INVENTORY_KEY=" + tok, "WAREHOUSE_SECRET=" + secret}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("README webhook lines: %v\n%s", err, out)
	}
	var acc struct {
		WarehouseID string `json:"warehouse_id"`
		Accepted    int    `json:"accepted"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(out), &acc); err != nil || acc.WarehouseID != "WH-BER-1" || acc.Accepted != 1 {
		t.Fatalf("answer: got %s (%v), want WH-BER-1 with 1 accepted", out, err)
	}
	if n := len(b.records(t, event.TopicInventoryStock)); n != 1 {
		t.Fatalf("got %d records, want 1", n)
	}
}
