package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/orderpipe/orderpipe/internal/input"
	"github.com/orderpipe/orderpipe/internal/redisstore"
)

// idempotent implements the Idempotency-Key contract of POST /v1/orders:
//   - the header is required (400 without it);
//   - the first request with a key runs; its answer is stored for IdempotencyTTL, scoped to the
//     API key, and replayed byte for byte (status, content type, body, Location) to a request
//     with the same key and the same body;
//   - the same key with a different body is 422; while the first request runs, 409;
//   - transient 5xx answers are not stored: the record is reopened so a retry runs again, and it
//     keeps the order id chosen by the first attempt, so downstream deduplicates by it.
//
// It also reads the (size-limited) body once and hands it to the handler.
func idempotent(cfg Config, store Store, log *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			key := c.Request().Header.Get("Idempotency-Key")
			if key == "" {
				return badRequest("The Idempotency-Key header is required: send a unique value per order attempt (a UUID) and reuse it when retrying.")
			}
			if len(key) > 255 || !printable(key) {
				return badRequest("The Idempotency-Key header must be 1 to 255 printable ASCII characters.")
			}
			body, err := readLimited(c, cfg.MaxBodyBytes)
			if err != nil {
				return err
			}
			// Card data is refused before the key is recorded: nothing derived from such a body
			// (not even its hash) is kept, and the refusal is not replayed.
			if ps, _ := input.JSON(body, input.Options{}); input.HasCard(ps) {
				return cardDataRejected(ps)
			}
			sum := sha256.Sum256(body)
			scope := keyOf(c).ID
			newID, err := uuid.NewV7()
			if err != nil {
				return err
			}
			begin, err := store.BeginIdempotent(c.Request().Context(), scope, key, hex.EncodeToString(sum[:]), newID.String(), cfg.IdempotencyLease, cfg.IdempotencyTTL, time.Now())
			if err != nil {
				return unavailable("Idempotency records cannot be read; nothing was held or charged.", 2*time.Second, err)
			}
			switch begin.Outcome {
			case redisstore.IdemMismatch:
				return newProblem(http.StatusUnprocessableEntity, "idempotency-key-reused", "Idempotency-Key reused", "This Idempotency-Key was used with a different request body; use a new key for a new order.")
			case redisstore.IdemInFlight:
				p := newProblem(http.StatusConflict, "idempotency-key-in-flight", "Request in progress", "A request with this Idempotency-Key is still being processed; retry shortly to get its answer.")
				p.retryAfter = time.Second
				return p
			case redisstore.IdemReplay:
				c.Set(orderIDCtxKey, begin.ID)
				c.Response().Header().Set("Idempotent-Replayed", "true")
				if begin.Status == http.StatusAccepted {
					c.Response().Header().Set(echo.HeaderLocation, "/v1/orders/"+begin.ID)
				}
				return c.Blob(begin.Status, begin.ContentType, begin.Body)
			}

			c.Set(orderIDCtxKey, begin.ID)
			c.Set(bodyCtxKey, body)
			res := c.Response()
			orig := res.Writer
			rec := &recorder{header: orig.Header()}
			res.Writer = rec
			defer func() { res.Writer = orig }() // also when the handler aborts the request
			if err := callRecovered(next, c); err != nil {
				c.Error(err)
			}
			res.Writer = orig

			status := res.Status
			// Store answers that are final for this body; reopen after transient failures. This
			// bookkeeping must finish even if the client hung up.
			ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request().Context()), 2*time.Second)
			defer cancel()
			if status >= 500 || status == http.StatusTooManyRequests {
				err = store.AbortIdempotent(ctx, scope, key)
			} else {
				var snaps []redisstore.Snapshot
				if doc, ok := c.Get(snapshotCtxKey).([]byte); ok && status == http.StatusAccepted {
					snaps = append(snaps, redisstore.Snapshot{OrderID: begin.ID, Doc: doc, TTL: cfg.PendingTTL})
				}
				finish := func() error {
					return store.FinishIdempotent(ctx, scope, key, status, rec.header.Get(echo.HeaderContentType), rec.body.Bytes(), snaps...)
				}
				// The order is accepted (the broker has it) whatever happens here; one retry
				// rides out a blip, so GET answers right after the 202.
				if err = finish(); err != nil && ctx.Err() == nil {
					time.Sleep(50 * time.Millisecond)
					err = finish()
				}
			}
			if err != nil {
				// The answer still goes out; the record's lease expires and a retry runs again
				// with the same order id, which downstream deduplicates.
				log.Warn("store idempotent answer", "order_id", begin.ID, "err", err)
			}
			orig.WriteHeader(status)
			_, err = orig.Write(rec.body.Bytes())
			return err
		}
	}
}

// callRecovered runs the handler and turns a panic into an error. Echo's Recover middleware
// would catch it too, but outside this one: the 500 would be written into the recorder and never
// sent (the client got an empty 200), and the idempotency record would stay in flight for its
// lease. As an error, the 500 goes out and the record is reopened like after any 5xx.
// http.ErrAbortHandler (a deliberate abort) is passed on.
func callRecovered(next echo.HandlerFunc, c echo.Context) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if r == http.ErrAbortHandler {
				panic(r)
			}
			err = fmt.Errorf("panic in %s %s: %v\n%s", c.Request().Method, c.Path(), r, debug.Stack())
		}
	}()
	return next(c)
}

// recorder buffers a handler's answer so it can be stored before it is sent.
type recorder struct {
	header http.Header
	body   bytes.Buffer
	status int
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(status int)      { r.status = status }

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
