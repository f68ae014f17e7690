package httpapi

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/catalog"
	"github.com/orderpipe/orderpipe/internal/event"
	"github.com/orderpipe/orderpipe/internal/order"
)

// The warehouse webhook bridge: POST /v1/warehouse/stock takes a batch of stock events of one
// warehouse, validates each against its JSON Schema, and produces them to inventory.stock
// (keyed by SKU, CloudEvents headers, exactly what a Kafka producer would write) before it
// answers 202.

// WarehouseDeps are what the warehouse webhook needs.
type WarehouseDeps struct {
	// Secret returns the webhook secret of a registered warehouse from the in-process registry
	// (warehouses.Registry): found is false when it is not registered, secret is nil when it
	// posts unsigned.
	Secret func(warehouseID string) (secret []byte, found bool)
	// Publish produces the records and returns once the broker acknowledged all of them
	// (acks=all), within the produce timeout.
	Publish   func(ctx context.Context, recs []*kgo.Record) error
	Validator *event.Validator
	Now       func() time.Time // nil means time.Now
}

// Limits of the webhook.
const (
	// MaxWarehouseEvents is the most events one request may carry (API_MAX_BODY_BYTES applies too).
	MaxWarehouseEvents = 500
	// SignatureTolerance is how far the signature's timestamp may be from the server's clock.
	SignatureTolerance = 5 * time.Minute
	// SignatureHeader carries "t=<unix seconds>,v1=<hex HMAC-SHA256 of t + "." + body>".
	SignatureHeader = "X-Orderpipe-Signature"
)

// warehouseStockRequest is the body of POST /v1/warehouse/stock (schemas/openapi.yaml,
// WarehouseStockRequest).
type warehouseStockRequest struct {
	Events []warehouseStockEvent `json:"events"`
}

type warehouseStockEvent struct {
	ID   string          `json:"id"`
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

type warehouseStockAccepted struct {
	WarehouseID string `json:"warehouse_id"`
	Accepted    int    `json:"accepted"`
}

func invalidStockEvents(problems []ProblemField) *Problem {
	p := newProblem(http.StatusUnprocessableEntity, "invalid-stock-events", "Invalid stock events", "Some events are invalid; see errors. Nothing was published.")
	p.Errors = problems
	return p
}

func handleWarehouseStock(cfg Config, cat *catalog.Cache, d WarehouseDeps) echo.HandlerFunc {
	now := d.Now
	if now == nil {
		now = time.Now
	}
	return func(c echo.Context) error {
		body, err := readLimited(c, cfg.MaxBodyBytes)
		if err != nil {
			return err
		}
		var req warehouseStockRequest
		if err := decodeStrict(c, body, &req); err != nil {
			var invalid *order.InvalidError
			if errors.As(err, &invalid) {
				fields := make([]ProblemField, len(invalid.Problems))
				for i, f := range invalid.Problems {
					fields[i] = ProblemField{Field: f.Field, Detail: f.Detail}
				}
				return invalidStockEvents(fields)
			}
			return err
		}
		switch {
		case len(req.Events) == 0:
			return invalidStockEvents([]ProblemField{{Field: "events", Detail: "must list at least one event"}})
		case len(req.Events) > MaxWarehouseEvents:
			return invalidStockEvents([]ProblemField{{Field: "events", Detail: fmt.Sprintf("must list at most %d events; split the batch", MaxWarehouseEvents)}})
		}
		// The warehouse and its signature are checked before the events are looked at in detail:
		// a body for an unregistered warehouse, or an unsigned one of a warehouse that signs,
		// gets no validation feedback.
		var first struct {
			WarehouseID string `json:"warehouse_id"`
		}
		if json.Unmarshal(req.Events[0].Data, &first) == nil && first.WarehouseID != "" {
			if err := checkSignature(c, d, first.WarehouseID, body, now()); err != nil {
				return err
			}
		}
		recs, wh, err := stockRecords(req, cat, d.Validator)
		if err != nil {
			return err
		}
		if wh != first.WarehouseID {
			// Not reached with a valid batch (every event names events[0]'s warehouse, which the
			// signature was checked for); kept so that no path publishes unchecked.
			return invalidStockEvents([]ProblemField{{Field: "events[0].data.warehouse_id", Detail: "must name the warehouse once, as a string"}})
		}
		if err := d.Publish(c.Request().Context(), recs); err != nil {
			return unavailable("The events could not be written to Kafka in time; some may have been. Retry the same request: events already applied change nothing.", 2*time.Second, err)
		}
		return c.JSON(http.StatusAccepted, warehouseStockAccepted{WarehouseID: wh, Accepted: len(recs)})
	}
}

// stockRecords validates every event and builds its Kafka record. Every problem is reported at
// once, with fields such as events[2].data.on_hand.
func stockRecords(req warehouseStockRequest, cat *catalog.Cache, v *event.Validator) ([]*kgo.Record, string, error) {
	var problems []ProblemField
	add := func(i int, field, detail string) {
		problems = append(problems, ProblemField{Field: fmt.Sprintf("events[%d]%s", i, field), Detail: detail})
	}
	recs := make([]*kgo.Record, 0, len(req.Events))
	warehouse := ""
	for i, in := range req.Events {
		if n := len(in.ID); n == 0 || n > 128 || !printableASCII(in.ID) {
			add(i, ".id", "is required: the event's unique id, 1 to 128 printable ASCII characters without spaces")
		}
		if !event.IsStockType(in.Type) {
			add(i, ".type", fmt.Sprintf("must be %s, %s or %s", event.TypeStockLevel, event.TypeStockAdjusted, event.TypeStockShipped))
			continue
		}
		if len(in.Data) == 0 || bytes.Equal(in.Data, []byte("null")) {
			add(i, ".data", "is required")
			continue
		}
		var data bytes.Buffer
		if err := json.Compact(&data, in.Data); err != nil {
			add(i, ".data", "is not valid JSON")
			continue
		}
		env, err := event.StockEnvelope(in.ID, "warehouse", in.Type, data.Bytes(), time.Time{})
		if err != nil {
			add(i, ".type", err.Error())
			continue
		}
		e, err := event.DecodeStock(v, env)
		var ve *event.ValidationError
		if errors.As(err, &ve) {
			for _, p := range ve.Problems {
				add(i, ".data"+strings.ReplaceAll(p.Field, "/", "."), p.Detail)
			}
			continue
		}
		if err != nil {
			add(i, ".data", err.Error())
			continue
		}
		if _, ok := cat.Get(e.SKU); !ok {
			add(i, ".data.sku", "is not in the catalog")
		}
		if warehouse == "" {
			warehouse = e.WarehouseID
		} else if e.WarehouseID != warehouse {
			add(i, ".data.warehouse_id", fmt.Sprintf("must be %s like events[0]: one warehouse per request", warehouse))
		}
		env.Source, env.Time = "warehouse/"+e.WarehouseID, e.OccurredAt
		recs = append(recs, env.Record(event.TopicInventoryStock, []byte(e.SKU)))
	}
	if len(problems) > 0 {
		return nil, "", invalidStockEvents(problems)
	}
	return recs, warehouse, nil
}

func printableASCII(s string) bool {
	for i := range len(s) {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// checkSignature refuses a warehouse that is not registered (403 unknown-warehouse: only
// registered warehouses may change stock, whatever key posts for them), and enforces the
// signature of one that has a webhook secret: X-Orderpipe-Signature: t=<unix seconds>,v1=<hex
// HMAC-SHA256(secret, t + "." + body)>, with t within SignatureTolerance of now. Several v1
// values are allowed (a secret being rotated). A warehouse registered without a secret posts
// unsigned; a signature that cannot be checked is refused.
func checkSignature(c echo.Context, d WarehouseDeps, warehouseID string, body []byte, now time.Time) error {
	secret, found := d.Secret(warehouseID)
	if !found {
		return newProblem(http.StatusForbidden, "unknown-warehouse", "Unknown warehouse",
			"Warehouse "+warehouseID+" is not registered, so it cannot post stock events; ops register warehouses with 'orderctl warehouses add'. Nothing was published.")
	}
	header := c.Request().Header.Get(SignatureHeader)
	unauthorized := func(slug, title, detail string) *Problem {
		return newProblem(http.StatusUnauthorized, slug, title, detail)
	}
	if secret == nil {
		if header != "" {
			return unauthorized("invalid-signature", "Invalid signature",
				"Warehouse "+warehouseID+" has no webhook secret, so its signature cannot be checked; register a secret or send no "+SignatureHeader+".")
		}
		return nil
	}
	if header == "" {
		return unauthorized("signature-required", "Signature required",
			"Warehouse "+warehouseID+" signs its requests: send "+SignatureHeader+": t=<unix seconds>,v1=<hex HMAC-SHA256 of t + \".\" + body>.")
	}
	var ts string
	var sigs [][]byte
	for part := range strings.SplitSeq(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			if b, err := hex.DecodeString(v); err == nil && len(b) == sha256.Size {
				sigs = append(sigs, b)
			}
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return unauthorized("invalid-signature", "Invalid signature",
			SignatureHeader+" must be t=<unix seconds>,v1=<64 hex digits>.")
	}
	if skew := now.Sub(time.Unix(sec, 0)); skew > SignatureTolerance || skew < -SignatureTolerance {
		return unauthorized("signature-expired", "Signature expired",
			fmt.Sprintf("The signature's timestamp t=%d is %s from the server's time; it must be within %s. Sign each request when you send it, and keep the clock in sync.", sec, skew.Round(time.Second).Abs(), SignatureTolerance))
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts))
	mac.Write([]byte("."))
	mac.Write(body)
	want := mac.Sum(nil)
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			return nil
		}
	}
	return unauthorized("invalid-signature", "Invalid signature",
		"No v1 signature matches: sign t + \".\" + the exact body bytes with the warehouse's secret (HMAC-SHA256, hex).")
}

// SignWarehouseBody returns the X-Orderpipe-Signature value for body at time t: what a warehouse
// system computes (tests and tools use it).
func SignWarehouseBody(secret, body []byte, t time.Time) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts))
	mac.Write([]byte("."))
	mac.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}
