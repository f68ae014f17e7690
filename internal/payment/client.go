package payment

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/sony/gobreaker/v2"
)

// ClientConfig configures a Client. Zero values take the defaults of Settings.
type ClientConfig struct {
	BaseURL         string        // e.g. http://127.0.0.1:8090
	Timeout         time.Duration // per attempt
	MaxAttempts     int           // attempts per call, the first included
	BackoffInitial  time.Duration // wait before the first retry; doubles, with jitter
	BackoffMax      time.Duration // longest wait between two attempts
	BreakerFailures int           // consecutive transient failures that open the breaker
	BreakerOpenFor  time.Duration // how long the breaker stays open before one probe
	HTTPClient      *http.Client  // optional; a pooled client by default
}

// Client calls the payment provider's HTTP API. It is safe for concurrent use; a process needs
// one (its metrics are registered once).
type Client struct {
	cfg     ClientConfig
	http    *http.Client
	breaker *gobreaker.CircuitBreaker[[]byte]

	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	retries  *prometheus.CounterVec
}

// NewClient builds a client and registers its metrics on reg (nil: not registered).
func NewClient(cfg ClientConfig, reg prometheus.Registerer) *Client {
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.MaxAttempts < 1 {
		cfg.MaxAttempts = 3
	}
	if cfg.BackoffInitial <= 0 {
		cfg.BackoffInitial = 100 * time.Millisecond
	}
	if cfg.BackoffMax < cfg.BackoffInitial {
		cfg.BackoffMax = max(cfg.BackoffInitial, 2*time.Second)
	}
	if cfg.BreakerFailures < 1 {
		cfg.BreakerFailures = 5
	}
	if cfg.BreakerOpenFor <= 0 {
		cfg.BreakerOpenFor = 10 * time.Second
	}
	hc := cfg.HTTPClient
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 64
		hc = &http.Client{Transport: tr}
	}
	failures := uint32(cfg.BreakerFailures)
	c := &Client{
		cfg:  cfg,
		http: hc,
		breaker: gobreaker.NewCircuitBreaker[[]byte](gobreaker.Settings{
			Name:        "payment",
			MaxRequests: 1, // one probe when half-open; its success closes the breaker
			Timeout:     cfg.BreakerOpenFor,
			ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= failures },
			// Only transient failures count against the provider: a decline or a rejected
			// request proves it is up.
			IsSuccessful: func(err error) bool { return err == nil || !errors.Is(err, ErrTransient) },
			// A caller that gave up (shutdown, its own deadline) says nothing about the provider.
			IsExcluded: func(err error) bool { return errors.Is(err, errCallerGone) },
		}),
	}
	f := promauto.With(reg)
	c.requests = f.NewCounterVec(prometheus.CounterOpts{
		Name: "orderpipe_payment_requests_total",
		Help: "Payment calls (retries included in one call) by operation and outcome: captured, declined, refunded, transient or permanent.",
	}, []string{"op", "outcome"})
	c.duration = f.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "orderpipe_payment_request_duration_seconds",
		Help:    "Duration of payment calls, retries and backoff included, by operation.",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"op"})
	c.retries = f.NewCounterVec(prometheus.CounterOpts{
		Name: "orderpipe_payment_retries_total",
		Help: "Payment attempts retried after a transient failure, by operation.",
	}, []string{"op"})
	// Every known series exists at 0 from the start (panels read rate() and increase()).
	for op, outcomes := range map[string][]string{
		"charge": {StatusCaptured, StatusDeclined, "transient", "permanent"},
		"refund": {StatusRefunded, "transient", "permanent"},
	} {
		c.retries.WithLabelValues(op)
		for _, outcome := range outcomes {
			c.requests.WithLabelValues(op, outcome)
		}
	}
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "orderpipe_payment_breaker_state",
		Help: "State of the payment provider's circuit breaker: 0 closed, 1 half-open, 2 open.",
	}, func() float64 {
		switch c.breaker.State() {
		case gobreaker.StateHalfOpen:
			return 1
		case gobreaker.StateOpen:
			return 2
		}
		return 0
	})
	return c
}

// State returns the circuit breaker's state: "closed", "half-open" or "open".
func (c *Client) State() string {
	return c.breaker.State().String()
}

// Charge verifies that req.Token authorizes the amount and captures it. It is idempotent by
// req.OrderID: a repeated charge returns the first result and never charges twice. A decline
// is not an error (Status "declined"); errors satisfy ErrTransient or ErrPermanent.
func (c *Client) Charge(ctx context.Context, req ChargeRequest) (Charge, error) {
	start := time.Now()
	ch, err := c.charge(ctx, req)
	outcome := ch.Status
	if err != nil {
		outcome = outcomeOf(err)
	}
	c.requests.WithLabelValues("charge", outcome).Inc()
	c.duration.WithLabelValues("charge").Observe(time.Since(start).Seconds())
	if err != nil {
		return Charge{}, fmt.Errorf("charge order %s: %w", req.OrderID, err)
	}
	return ch, nil
}

func (c *Client) charge(ctx context.Context, req ChargeRequest) (Charge, error) {
	if err := req.validate(); err != nil {
		return Charge{}, err
	}
	body, err := json.Marshal(chargeBody{
		OrderID: req.OrderID, Token: req.Token, Method: req.Method,
		AmountMinor: req.AmountMinor, Currency: req.Currency,
	})
	if err != nil {
		return Charge{}, fmt.Errorf("encode charge: %v: %w", err, ErrPermanent)
	}
	raw, err := c.call(ctx, "charge", "/v1/charges", req.OrderID, body)
	if err != nil {
		return Charge{}, err
	}
	var r chargeReply
	if err := json.Unmarshal(raw, &r); err != nil {
		return Charge{}, fmt.Errorf("decode charge answer: %v: %w", err, ErrTransient)
	}
	if (r.Status != StatusCaptured && r.Status != StatusDeclined) || r.ID == "" {
		return Charge{}, fmt.Errorf("provider answered charge status %q, id %q: %w", r.Status, r.ID, ErrTransient)
	}
	if r.AmountMinor != req.AmountMinor || r.Currency != req.Currency {
		return Charge{}, fmt.Errorf("provider answered %d %s for %d %s: %w", r.AmountMinor, r.Currency, req.AmountMinor, req.Currency, ErrPermanent)
	}
	return Charge{ID: r.ID, Status: r.Status, DeclineCode: r.DeclineCode, AmountMinor: r.AmountMinor, Currency: r.Currency}, nil
}

// Refund returns the payment captured for orderID in full (amountMinor must be the captured
// amount). It is idempotent by orderID: a repeated refund returns the first one.
func (c *Client) Refund(ctx context.Context, orderID string, amountMinor int64, currency string) (Refund, error) {
	start := time.Now()
	rf, err := c.refund(ctx, orderID, amountMinor, currency)
	outcome := StatusRefunded
	if err != nil {
		outcome = outcomeOf(err)
	}
	c.requests.WithLabelValues("refund", outcome).Inc()
	c.duration.WithLabelValues("refund").Observe(time.Since(start).Seconds())
	if err != nil {
		return Refund{}, fmt.Errorf("refund order %s: %w", orderID, err)
	}
	return rf, nil
}

func (c *Client) refund(ctx context.Context, orderID string, amountMinor int64, currency string) (Refund, error) {
	switch {
	case orderID == "" || len(orderID) > 255:
		return Refund{}, fmt.Errorf("order id %q: want 1..255 characters: %w", orderID, ErrPermanent)
	case amountMinor <= 0:
		return Refund{}, fmt.Errorf("amount %d: want a positive amount in minor units: %w", amountMinor, ErrPermanent)
	case !validCurrency(currency):
		return Refund{}, fmt.Errorf("currency %q: want an ISO 4217 code such as EUR: %w", currency, ErrPermanent)
	}
	body, err := json.Marshal(refundBody{OrderID: orderID, AmountMinor: amountMinor, Currency: currency})
	if err != nil {
		return Refund{}, fmt.Errorf("encode refund: %v: %w", err, ErrPermanent)
	}
	raw, err := c.call(ctx, "refund", "/v1/refunds", orderID, body)
	if err != nil {
		return Refund{}, err
	}
	var r refundReply
	if err := json.Unmarshal(raw, &r); err != nil {
		return Refund{}, fmt.Errorf("decode refund answer: %v: %w", err, ErrTransient)
	}
	if r.Status != StatusRefunded || r.ID == "" {
		return Refund{}, fmt.Errorf("provider answered refund status %q, id %q: %w", r.Status, r.ID, ErrTransient)
	}
	return Refund{ID: r.ID, Status: r.Status}, nil
}

// call POSTs body to path with the idempotency key, through the breaker, retrying transient
// failures with exponential backoff and jitter. It returns the body of a 200 or 201 answer.
func (c *Client) call(ctx context.Context, op, path, key string, body []byte) ([]byte, error) {
	url := c.cfg.BaseURL + path
	attempts := 0
	raw, err := backoff.Retry(ctx, func() ([]byte, error) {
		attempts++
		raw, err := c.breaker.Execute(func() ([]byte, error) { return c.attempt(ctx, url, key, body) })
		switch {
		case err == nil:
			return raw, nil
		case errors.Is(err, gobreaker.ErrOpenState), errors.Is(err, gobreaker.ErrTooManyRequests):
			// Fail fast: waiting out the backoff would only find the breaker still open.
			return nil, backoff.Permanent(fmt.Errorf("circuit breaker %s: %w", c.State(), ErrTransient))
		case errors.Is(err, ErrPermanent), errors.Is(err, errCallerGone):
			return nil, backoff.Permanent(err)
		}
		if attempts < c.cfg.MaxAttempts {
			c.retries.WithLabelValues(op).Inc()
		}
		return nil, fmt.Errorf("attempt %d of %d: %w", attempts, c.cfg.MaxAttempts, err)
	},
		backoff.WithBackOff(&backoff.ExponentialBackOff{
			InitialInterval:     c.cfg.BackoffInitial,
			RandomizationFactor: 0.5,
			Multiplier:          2,
			MaxInterval:         c.cfg.BackoffMax,
		}),
		backoff.WithMaxTries(uint(c.cfg.MaxAttempts)),
		backoff.WithMaxElapsedTime(0), // bounded by attempts and ctx
	)
	if err != nil && !errors.Is(err, ErrTransient) && !errors.Is(err, ErrPermanent) {
		// The caller's context ended (backoff returns only its cause): nothing was decided.
		err = fmt.Errorf("%w: %w", err, ErrTransient)
	}
	return raw, err
}

// attempt makes one request, bounded by the per-attempt timeout, and classifies its result.
func (c *Client) attempt(ctx context.Context, url, key string, body []byte) ([]byte, error) {
	actx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("build request: %v: %w", err, ErrPermanent)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	// The key makes the POST replayable: net/http itself resends it once when a reused
	// keep-alive connection turns out to be dead, which is safe for the same reason our retries are.
	req.Header.Set("Idempotency-Key", key)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.transportError(ctx, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, c.transportError(ctx, err)
	}
	switch code := resp.StatusCode; {
	case code == http.StatusOK || code == http.StatusCreated:
		return raw, nil
	case code == http.StatusConflict && errorCode(raw) == "idempotency_key_reused":
		// The same order id was charged before with another amount: a bug no retry can fix.
		return nil, fmt.Errorf("provider answered %d: %s: %w", code, errorText(raw), ErrPermanent)
	case code >= 500, code == http.StatusTooManyRequests, code == http.StatusConflict, code == http.StatusRequestTimeout:
		return nil, fmt.Errorf("provider answered %d: %s: %w", code, errorText(raw), ErrTransient)
	case code >= 400:
		return nil, fmt.Errorf("provider answered %d: %s: %w", code, errorText(raw), ErrPermanent)
	default:
		return nil, fmt.Errorf("provider answered unexpected %d: %w", code, ErrTransient)
	}
}

// errCallerGone marks an attempt cut short by the caller's own context, which says nothing
// about the provider's health.
var errCallerGone = errors.New("caller gave up")

func (c *Client) transportError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w: %w", errCallerGone, context.Cause(ctx))
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("no answer within %s: %w", c.cfg.Timeout, ErrTransient)
	}
	return fmt.Errorf("%v: %w", err, ErrTransient)
}

func outcomeOf(err error) string {
	if errors.Is(err, ErrPermanent) {
		return "permanent"
	}
	return "transient"
}

// Wire format of the provider's API.

type chargeBody struct {
	OrderID     string `json:"order_id"`
	Token       string `json:"token"`
	Method      string `json:"method"`
	AmountMinor int64  `json:"amount_minor"`
	Currency    string `json:"currency"`
}

type chargeReply struct {
	ID          string `json:"id"`
	Status      string `json:"status"`
	DeclineCode string `json:"decline_code"`
	AmountMinor int64  `json:"amount_minor"`
	Currency    string `json:"currency"`
}

type refundBody struct {
	OrderID     string `json:"order_id"`
	AmountMinor int64  `json:"amount_minor"`
	Currency    string `json:"currency"`
}

type refundReply struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

type errorReply struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func errorCode(raw []byte) string {
	var e errorReply
	_ = json.Unmarshal(raw, &e)
	return e.Error.Code
}

func errorText(raw []byte) string {
	var e errorReply
	if json.Unmarshal(raw, &e) == nil && e.Error.Code != "" {
		return e.Error.Code + ": " + e.Error.Message
	}
	if len(raw) > 200 {
		raw = raw[:200]
	}
	return strings.TrimSpace(string(raw))
}
