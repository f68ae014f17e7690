package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
)

// maxBodyBytes is the body limit of the baselines (the api's default API_MAX_BODY_BYTES).
const maxBodyBytes = 64 << 10

// orderRequest mirrors PlaceOrderRequest of schemas/openapi.yaml, so the baselines decode the
// same body as the api.
type orderRequest struct {
	CustomerID string `json:"customer_id"`
	Email      string `json:"email"`
	Priority   string `json:"priority"`
	Lines      []struct {
		SKU      string `json:"sku"`
		Quantity int64  `json:"quantity"`
	} `json:"lines"`
	Payment struct {
		Method string `json:"method"`
		Token  string `json:"token"`
	} `json:"payment"`
	ShippingAddress struct {
		Name       string `json:"name"`
		Line1      string `json:"line1"`
		Line2      string `json:"line2,omitempty"`
		City       string `json:"city"`
		PostalCode string `json:"postal_code"`
		Country    string `json:"country"`
	} `json:"shipping_address"`
}

// accepted is the small answer of the baselines.
type accepted struct {
	OrderID string `json:"order_id"`
	Status  string `json:"status"`
}

// decodeOrder decodes a body strictly (unknown fields rejected) and checks the one line the
// baselines serve.
func decodeOrder(c echo.Context) (orderRequest, error) {
	var req orderRequest
	dec := json.NewDecoder(http.MaxBytesReader(c.Response(), c.Request().Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, echo.NewHTTPError(http.StatusBadRequest, "decode order: "+err.Error())
	}
	if len(req.Lines) != 1 || req.Lines[0].SKU == "" || req.Lines[0].Quantity < 1 {
		return req, echo.NewHTTPError(http.StatusUnprocessableEntity, "want exactly one line with a sku and a positive quantity")
	}
	return req, nil
}

func newEcho() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.Logger.SetOutput(io.Discard)
	return e
}

// bareHandler is baseline (a), the HTTP ceiling: decode the order, answer 202.
func bareHandler() http.Handler {
	e := newEcho()
	e.POST("/v1/orders", func(c echo.Context) error {
		if _, err := decodeOrder(c); err != nil {
			return err
		}
		return c.JSON(http.StatusAccepted, accepted{OrderID: uuid.NewString(), Status: "pending"})
	})
	return e
}

// naiveSchemaSQL creates the tables of baseline (b) in its own schema. There is deliberately no
// CHECK (allocated <= on_hand): the oversell check then tests the design, not a constraint.
const naiveSchemaSQL = `
CREATE TABLE naive_stock (
    sku       text   PRIMARY KEY,
    on_hand   bigint NOT NULL,
    allocated bigint NOT NULL DEFAULT 0
);
CREATE TABLE naive_orders (
    id               uuid        PRIMARY KEY,
    sku              text        NOT NULL,
    quantity         bigint      NOT NULL,
    customer_id      text        NOT NULL,
    email            text        NOT NULL,
    payment_method   text        NOT NULL,
    payment_token    text        NOT NULL,
    shipping_address jsonb       NOT NULL,
    placed_at        timestamptz NOT NULL DEFAULT now()
)`

// setupNaive creates the naive tables in the pool's schema and stocks sku.
func setupNaive(ctx context.Context, pool *pgxpool.Pool, sku string, onHand int64) error {
	if _, err := pool.Exec(ctx, naiveSchemaSQL); err != nil {
		return fmt.Errorf("create naive tables: %w", err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO naive_stock (sku, on_hand) VALUES ($1, $2)`, sku, onHand); err != nil {
		return fmt.Errorf("stock naive %s: %w", sku, err)
	}
	return nil
}

// errShort is the naive design's out of stock.
var errShort = errors.New("out of stock")

// naiveHandler is baseline (b), the naive design: per order one transaction that locks the SKU
// row (SELECT ... FOR UPDATE), checks availability, UPDATEs allocated, INSERTs the order and
// COMMITs; 202 or 409.
func naiveHandler(pool *pgxpool.Pool) http.Handler {
	e := newEcho()
	e.POST("/v1/orders", func(c echo.Context) error {
		req, err := decodeOrder(c)
		if err != nil {
			return err
		}
		id := uuid.New()
		err = placeNaive(c.Request().Context(), pool, id, req)
		if errors.Is(err, errShort) {
			return c.JSON(http.StatusConflict, map[string]string{"error": "out of stock"})
		}
		if err != nil {
			return fmt.Errorf("place naive order %s: %w", id, err)
		}
		return c.JSON(http.StatusAccepted, accepted{OrderID: id.String(), Status: "pending"})
	})
	return e
}

func placeNaive(ctx context.Context, pool *pgxpool.Pool, id uuid.UUID, req orderRequest) error {
	line := req.Lines[0]
	addr, err := json.Marshal(req.ShippingAddress)
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var onHand, allocated int64
		err := tx.QueryRow(ctx, `SELECT on_hand, allocated FROM naive_stock WHERE sku = $1 FOR UPDATE`, line.SKU).Scan(&onHand, &allocated)
		if errors.Is(err, pgx.ErrNoRows) {
			return errShort
		}
		if err != nil {
			return fmt.Errorf("lock stock: %w", err)
		}
		if onHand-allocated < line.Quantity {
			return errShort
		}
		if _, err := tx.Exec(ctx, `UPDATE naive_stock SET allocated = allocated + $2 WHERE sku = $1`, line.SKU, line.Quantity); err != nil {
			return fmt.Errorf("allocate: %w", err)
		}
		_, err = tx.Exec(ctx, `
INSERT INTO naive_orders (id, sku, quantity, customer_id, email, payment_method, payment_token, shipping_address)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			id, line.SKU, line.Quantity, req.CustomerID, req.Email, req.Payment.Method, req.Payment.Token, addr)
		if err != nil {
			return fmt.Errorf("insert order: %w", err)
		}
		return nil
	})
}

// readNaive reads the state the naive oversell check needs.
func readNaive(ctx context.Context, pool *pgxpool.Pool, sku string) (onHand, allocated, rows, units int64, err error) {
	err = pool.QueryRow(ctx, `
SELECT s.on_hand, s.allocated, (SELECT count(*) FROM naive_orders WHERE sku = $1), (SELECT COALESCE(sum(quantity), 0) FROM naive_orders WHERE sku = $1)
FROM naive_stock s WHERE s.sku = $1`, sku).Scan(&onHand, &allocated, &rows, &units)
	if err != nil {
		return 0, 0, 0, 0, fmt.Errorf("read naive stock %s: %w", sku, err)
	}
	return onHand, allocated, rows, units, nil
}

// server is one baseline's HTTP server on a free loopback port.
type server struct {
	url  string
	srv  *http.Server
	done chan error
}

func serve(h http.Handler) (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen on loopback: %w", err)
	}
	s := &server{
		url:  "http://" + ln.Addr().String(),
		srv:  &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute},
		done: make(chan error, 1),
	}
	go func() { s.done <- s.srv.Serve(ln) }()
	return s, nil
}

// close stops accepting, waits for requests in flight and returns how serving ended.
func (s *server) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if serr := <-s.done; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("stop server %s: %w", s.url, err)
	}
	return nil
}
