package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The naive design is the baseline of the decisions-per-second measurement: the row-lock design
// of the intake benchmark (internal/bench/baseline.go: per order one Postgres transaction that
// locks the SKU row with SELECT ... FOR UPDATE, checks availability, updates allocated, inserts
// the order, commits; 202 or 409) extended to orders of several lines, so it serves the same
// scenario as the pipeline: the rows are locked in SKU order (no deadlocks) and every line is
// checked before anything is written. There is deliberately no CHECK (allocated <= on_hand): the
// oversell check then tests the design, not a constraint.

const naiveSchema = `
CREATE TABLE naive_stock (
    sku       text   PRIMARY KEY,
    on_hand   bigint NOT NULL,
    allocated bigint NOT NULL DEFAULT 0
);
CREATE TABLE naive_orders (
    id               uuid        PRIMARY KEY,
    customer_id      text        NOT NULL,
    email            text        NOT NULL,
    priority         text        NOT NULL,
    payment_token    text        NOT NULL,
    shipping_address jsonb       NOT NULL,
    placed_at        timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE naive_order_lines (
    order_id uuid   NOT NULL REFERENCES naive_orders (id),
    sku      text   NOT NULL,
    quantity bigint NOT NULL
)`

type naiveOrder struct {
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
	ShippingAddress json.RawMessage `json:"shipping_address"`
}

var errNaiveShort = errors.New("out of stock")

// naiveServer is the naive design on loopback, on its own schema of the private database.
type naiveServer struct {
	URL  string
	pool *pgxpool.Pool
	srv  *http.Server
}

func startNaive(ctx context.Context, databaseURL string, stock map[string]int64) (*naiveServer, error) {
	admin, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		return nil, err
	}
	_, err = admin.Exec(ctx, `DROP SCHEMA IF EXISTS naive CASCADE; CREATE SCHEMA naive`)
	_ = admin.Close(ctx)
	if err != nil {
		return nil, fmt.Errorf("naive schema: %w", err)
	}
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, err
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = "naive"
	cfg.MaxConns = 16 // the api's DATABASE_MAX_CONNS default, as in the intake benchmark
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if _, err := pool.Exec(ctx, naiveSchema); err != nil {
		pool.Close()
		return nil, fmt.Errorf("naive tables: %w", err)
	}
	b := &pgx.Batch{}
	for sku, n := range stock {
		b.Queue(`INSERT INTO naive_stock (sku, on_hand) VALUES ($1, $2)`, sku, n)
	}
	if err := pool.SendBatch(ctx, b).Close(); err != nil {
		pool.Close()
		return nil, fmt.Errorf("naive stock: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		pool.Close()
		return nil, err
	}
	s := &naiveServer{URL: "http://" + ln.Addr().String(), pool: pool}
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

func (s *naiveServer) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/orders" {
		http.NotFound(w, r)
		return
	}
	var o naiveOrder
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&o); err != nil || len(o.Lines) == 0 {
		writeProblem(w, http.StatusUnprocessableEntity, "invalid-order")
		return
	}
	id, err := uuid.NewV7()
	if err != nil {
		writeProblem(w, http.StatusInternalServerError, "internal")
		return
	}
	err = s.place(r.Context(), id, o)
	switch {
	case errors.Is(err, errNaiveShort):
		writeProblem(w, http.StatusConflict, "out-of-stock")
	case err != nil:
		writeProblem(w, http.StatusInternalServerError, "internal")
	default:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(map[string]string{"order_id": id.String(), "status": "pending"})
	}
}

func writeProblem(w http.ResponseWriter, status int, typ string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"type": "https://orderpipe.example/problems/" + typ, "status": status})
}

func (s *naiveServer) place(ctx context.Context, id uuid.UUID, o naiveOrder) error {
	lines := append(o.Lines[:0:0], o.Lines...)
	sort.Slice(lines, func(i, j int) bool { return lines[i].SKU < lines[j].SKU })
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for _, l := range lines {
			var onHand, allocated int64
			err := tx.QueryRow(ctx, `SELECT on_hand, allocated FROM naive_stock WHERE sku = $1 FOR UPDATE`, l.SKU).Scan(&onHand, &allocated)
			if errors.Is(err, pgx.ErrNoRows) {
				return errNaiveShort
			}
			if err != nil {
				return err
			}
			if onHand-allocated < l.Quantity {
				return errNaiveShort
			}
		}
		for _, l := range lines {
			if _, err := tx.Exec(ctx, `UPDATE naive_stock SET allocated = allocated + $2 WHERE sku = $1`, l.SKU, l.Quantity); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO naive_orders (id, customer_id, email, priority, payment_token, shipping_address) VALUES ($1, $2, $3, $4, $5, $6)`,
			id, o.CustomerID, o.Email, o.Priority, o.Payment.Token, o.ShippingAddress); err != nil {
			return err
		}
		for _, l := range lines {
			if _, err := tx.Exec(ctx, `INSERT INTO naive_order_lines (order_id, sku, quantity) VALUES ($1, $2, $3)`, id, l.SKU, l.Quantity); err != nil {
				return err
			}
		}
		return nil
	})
}

// oversold returns the naive design's oversold units (allocated beyond on_hand, and lines
// beyond allocated) per SKU; empty when it sold nothing it did not have.
func (s *naiveServer) oversold(ctx context.Context) (map[string]int64, error) {
	rows, err := s.pool.Query(ctx, `
SELECT s.sku, s.on_hand, s.allocated, COALESCE((SELECT sum(quantity) FROM naive_order_lines l WHERE l.sku = s.sku), 0)
FROM naive_stock s`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var sku string
		var onHand, allocated, lines int64
		if err := rows.Scan(&sku, &onHand, &allocated, &lines); err != nil {
			return nil, err
		}
		if allocated > onHand {
			out[sku] += allocated - onHand
		}
		if lines != allocated {
			out[sku+" (lines != allocated)"] += lines - allocated
		}
	}
	return out, rows.Err()
}

func (s *naiveServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
	s.pool.Close()
}
