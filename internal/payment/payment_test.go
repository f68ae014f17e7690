package payment_test

import (
	"strings"
	"testing"
	"time"

	"github.com/orderpipe/orderpipe/internal/config"
	"github.com/orderpipe/orderpipe/internal/payment"
)

// worker stands for a process's configuration that embeds the payment section.
type worker struct {
	payment.Settings
}

func TestSettingsDefaults(t *testing.T) {
	t.Parallel()
	var cfg worker
	if err := config.Load(&cfg, func(string) string { return "" }); err != nil {
		t.Fatalf("load defaults: %v", err)
	}
	got := cfg.ClientConfig()
	want := payment.ClientConfig{
		BaseURL: "http://127.0.0.1:8090", Timeout: 2 * time.Second, MaxAttempts: 3,
		BackoffInitial: 100 * time.Millisecond, BackoffMax: 2 * time.Second,
		BreakerFailures: 5, BreakerOpenFor: 10 * time.Second,
	}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	settings, err := config.Settings(&cfg)
	if err != nil {
		t.Fatalf("settings: %v", err)
	}
	for _, s := range settings {
		if s.Help == "" {
			t.Fatalf("%s: got no help text, want one", s.Name)
		}
	}
}

func TestSettingsNameTheBadVariable(t *testing.T) {
	t.Parallel()
	tests := []struct{ variable, value string }{
		{"PAYMENT_URL", "ftp://pay.example"},
		{"PAYMENT_URL", "127.0.0.1:8090"},
		{"PAYMENT_TIMEOUT", "0s"},
		{"PAYMENT_TIMEOUT", "soon"},
		{"PAYMENT_MAX_ATTEMPTS", "0"},
		{"PAYMENT_MAX_ATTEMPTS", "21"},
		{"PAYMENT_BACKOFF_INITIAL", "0s"},
		{"PAYMENT_BACKOFF_MAX", "50ms"},
		{"PAYMENT_BREAKER_FAILURES", "0"},
		{"PAYMENT_BREAKER_OPEN_FOR", "-1s"},
	}
	for _, tt := range tests {
		t.Run(tt.variable+"="+tt.value, func(t *testing.T) {
			t.Parallel()
			var cfg worker
			err := config.Load(&cfg, func(name string) string {
				if name == tt.variable {
					return tt.value
				}
				return ""
			})
			if err == nil || !strings.Contains(err.Error(), tt.variable) {
				t.Fatalf("got %v, want an error naming %s", err, tt.variable)
			}
		})
	}
}
