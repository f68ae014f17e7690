package notifier_test

import (
	"io"
	"strings"
	"testing"

	"github.com/orderpipe/orderpipe/internal/notifier"
)

// A bad setting stops the notifier before it connects to anything, naming the variable.
func TestConfigErrorsNameTheVariable(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"SMTP_TLS": "sometimes"}, "SMTP_TLS"},
		{map[string]string{"SMTP_PORT": "0"}, "SMTP_PORT"},
		{map[string]string{"SMTP_USERNAME": "u"}, "SMTP_PASSWORD"},
		{map[string]string{"SMTP_HOST": "smtp.example.com", "SMTP_TLS": "off", "SMTP_USERNAME": "u", "SMTP_PASSWORD": "p"}, "SMTP_TLS"},
		{map[string]string{"MAIL_FROM": "not an address"}, "MAIL_FROM"},
		{map[string]string{"MAIL_ORDER_BASE_URL": "/orders/"}, "MAIL_ORDER_BASE_URL"},
		{map[string]string{"NOTIFIER_GROUPS": "notifier,billing"}, "NOTIFIER_GROUPS"},
		{map[string]string{"NOTIFIER_RETRY_TIERS": "1m"}, "NOTIFIER_RETRY_TIERS"},
		{map[string]string{"REPORTS_RETRY_TIERS": "1m,2m"}, "REPORTS_RETRY_TIERS"},
		{map[string]string{"NOTIFIER_MAX_SENDS": "0"}, "NOTIFIER_MAX_SENDS"},
		{map[string]string{"NOTIFIER_SEND_LEASE": "10s", "SMTP_TIMEOUT": "20s"}, "NOTIFIER_SEND_LEASE"},
		{map[string]string{"REPORTS_DAILY_TO": "ops"}, "REPORTS_DAILY_TO"},
		{map[string]string{"REPORTS_DAILY_AT": "6am"}, "REPORTS_DAILY_AT"},
		{map[string]string{"REPORTS_TIMEZONE": "Mars/Olympus"}, "REPORTS_TIMEZONE"},
		{map[string]string{"DATABASE_MAX_CONNS": "0"}, "DATABASE_MAX_CONNS"},
		{map[string]string{"SMTP_TLS_CA_FILE": "/nonexistent.pem"}, "SMTP_TLS_CA_FILE"},
	} {
		err := notifier.Run(t.Context(), nil, func(k string) string { return c.env[k] }, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("env %v: got %v, want an error naming %s", c.env, err, c.want)
		}
	}
	var b strings.Builder
	if err := notifier.Run(t.Context(), []string{"-h"}, func(string) string { return "" }, &b); err != nil || !strings.Contains(b.String(), "SMTP_TLS") {
		t.Fatalf("-h: %v\n%s", err, b.String())
	}
}
