// Package payment is the payment-provider adapter: an HTTP client that verifies a checkout's
// provider token and captures the order's amount, idempotent by order id, with per-attempt
// timeouts, bounded retries with exponential backoff and jitter, and a circuit breaker.
//
// Card data never enters orderpipe: an order carries only the token the checkout obtained from
// the provider in the browser. A decline is an answer, not an error. Errors are classified for
// the caller: errors.Is(err, ErrTransient) means "try again later, nothing was decided" and
// errors.Is(err, ErrPermanent) means "this request can never succeed as sent".
package payment

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/orderpipe/orderpipe/internal/config"
)

// Charge statuses.
const (
	StatusCaptured = "captured"
	StatusDeclined = "declined"
	StatusRefunded = "refunded"
)

// Decline codes the provider gives with StatusDeclined (others may appear).
const (
	DeclineCardDeclined      = "card_declined"
	DeclineInsufficientFunds = "insufficient_funds"
	DeclineExpiredToken      = "expired_token"
)

var (
	// ErrTransient marks a failure after which nothing was decided: a timeout, a 5xx, 429, a
	// refused or dropped connection, or an open circuit breaker. Retrying later with the same
	// order id is safe: the provider never charges twice for one idempotency key.
	ErrTransient = errors.New("payment provider unavailable (transient)")
	// ErrPermanent marks a request that can never succeed as sent: an invalid token format or
	// request, an idempotency key reused with a different amount, a refund of a payment that
	// was never captured.
	ErrPermanent = errors.New("payment request rejected (permanent)")
)

// ChargeRequest asks the provider to verify Token and capture AmountMinor of Currency.
type ChargeRequest struct {
	OrderID     string // also the idempotency key
	Token       string
	Method      string // card, paypal, sepa_debit, apple_pay, google_pay
	AmountMinor int64
	Currency    string // ISO 4217
}

// Charge is the provider's answer to a ChargeRequest.
type Charge struct {
	ID          string // provider's payment id
	Status      string // StatusCaptured or StatusDeclined
	DeclineCode string // when declined, e.g. "insufficient_funds", "card_declined", "expired_token"
	AmountMinor int64
	Currency    string
}

// Refund is the provider's answer to a refund of a captured payment.
type Refund struct {
	ID     string // provider's refund id
	Status string // StatusRefunded
}

// validate checks the request before anything is sent; its errors satisfy ErrPermanent.
func (r ChargeRequest) validate() error {
	switch {
	case r.OrderID == "" || len(r.OrderID) > 255:
		return fmt.Errorf("order id %q: want 1..255 characters: %w", r.OrderID, ErrPermanent)
	case !validToken(r.Token):
		return fmt.Errorf("token: want tok_ followed by letters, digits, _ or -, 8..256 characters: %w", ErrPermanent)
	case !validMethod(r.Method):
		return fmt.Errorf("method %q: want card, paypal, sepa_debit, apple_pay or google_pay: %w", r.Method, ErrPermanent)
	case r.AmountMinor <= 0:
		return fmt.Errorf("amount %d: want a positive amount in minor units: %w", r.AmountMinor, ErrPermanent)
	case !validCurrency(r.Currency):
		return fmt.Errorf("currency %q: want an ISO 4217 code such as EUR: %w", r.Currency, ErrPermanent)
	}
	return nil
}

// validToken reports whether token has the provider's token format: "tok_" followed by
// letters, digits, '_' or '-', 8 to 256 characters in all, so it can never be a card number.
func validToken(token string) bool {
	if len(token) < 8 || len(token) > 256 || token[:4] != "tok_" {
		return false
	}
	for _, c := range []byte(token[4:]) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

func validMethod(m string) bool {
	switch m {
	case "card", "paypal", "sepa_debit", "apple_pay", "google_pay":
		return true
	}
	return false
}

func validCurrency(c string) bool {
	if len(c) != 3 {
		return false
	}
	for _, r := range []byte(c) {
		if r < 'A' || r > 'Z' {
			return false
		}
	}
	return true
}

// Settings is the payment section a process embeds in its configuration.
type Settings struct {
	PaymentURL             string        `env:"PAYMENT_URL" envDefault:"http://127.0.0.1:8090" help:"base URL of the payment provider (orderctl paysim in development)"`
	PaymentTimeout         time.Duration `env:"PAYMENT_TIMEOUT" envDefault:"2s" help:"time limit of one request to the payment provider (per attempt)"`
	PaymentMaxAttempts     int           `env:"PAYMENT_MAX_ATTEMPTS" envDefault:"3" help:"attempts per charge or refund, the first included, before it counts as a transient failure"`
	PaymentBackoffInitial  time.Duration `env:"PAYMENT_BACKOFF_INITIAL" envDefault:"100ms" help:"wait before the first retry (doubles each retry, with jitter)"`
	PaymentBackoffMax      time.Duration `env:"PAYMENT_BACKOFF_MAX" envDefault:"2s" help:"longest wait between two attempts"`
	PaymentBreakerFailures int           `env:"PAYMENT_BREAKER_FAILURES" envDefault:"5" help:"consecutive transient failures that open the circuit breaker"`
	PaymentBreakerOpenFor  time.Duration `env:"PAYMENT_BREAKER_OPEN_FOR" envDefault:"10s" help:"how long the open breaker fails calls fast before it lets one probe through"`
}

// Validate checks the payment section.
func (s *Settings) Validate() error {
	u, err := url.Parse(s.PaymentURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return config.Errorf("PAYMENT_URL", "want an http:// or https:// URL with a host, got %q", s.PaymentURL)
	}
	if s.PaymentTimeout < time.Millisecond {
		return config.Errorf("PAYMENT_TIMEOUT", "want at least 1ms, got %s", s.PaymentTimeout)
	}
	if s.PaymentMaxAttempts < 1 || s.PaymentMaxAttempts > 20 {
		return config.Errorf("PAYMENT_MAX_ATTEMPTS", "want 1..20, got %d", s.PaymentMaxAttempts)
	}
	if s.PaymentBackoffInitial <= 0 {
		return config.Errorf("PAYMENT_BACKOFF_INITIAL", "want a positive duration, got %s", s.PaymentBackoffInitial)
	}
	if s.PaymentBackoffMax < s.PaymentBackoffInitial {
		return config.Errorf("PAYMENT_BACKOFF_MAX", "want at least PAYMENT_BACKOFF_INITIAL (%s), got %s", s.PaymentBackoffInitial, s.PaymentBackoffMax)
	}
	if s.PaymentBreakerFailures < 1 {
		return config.Errorf("PAYMENT_BREAKER_FAILURES", "want at least 1, got %d", s.PaymentBreakerFailures)
	}
	if s.PaymentBreakerOpenFor <= 0 {
		return config.Errorf("PAYMENT_BREAKER_OPEN_FOR", "want a positive duration, got %s", s.PaymentBreakerOpenFor)
	}
	return nil
}

// ClientConfig returns the client configuration these settings describe.
func (s Settings) ClientConfig() ClientConfig {
	return ClientConfig{
		BaseURL:         s.PaymentURL,
		Timeout:         s.PaymentTimeout,
		MaxAttempts:     s.PaymentMaxAttempts,
		BackoffInitial:  s.PaymentBackoffInitial,
		BackoffMax:      s.PaymentBackoffMax,
		BreakerFailures: s.PaymentBreakerFailures,
		BreakerOpenFor:  s.PaymentBreakerOpenFor,
	}
}
