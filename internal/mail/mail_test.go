package mail_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"testing"
	"time"

	omail "github.com/orderpipe/orderpipe/internal/mail"
	"github.com/orderpipe/orderpipe/internal/mailsink"
)

func TestMoney(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		minor int64
		code  string
		want  string
	}{
		{4990, "EUR", "€49.90"},
		{5, "EUR", "€0.05"},
		{0, "EUR", "€0.00"},
		{123456789, "USD", "$1234567.89"},
		{1200, "JPY", "¥1200"},
		{1250, "KWD", "KWD 1.250"},
		{4990, "CHF", "CHF 49.90"},
		{-250, "EUR", "-€2.50"},
		{990, "XQQ", "XQQ 9.90"},
	} {
		if got := omail.Money(c.minor, c.code); got != c.want {
			t.Errorf("Money(%d, %s): got %q, want %q", c.minor, c.code, got, c.want)
		}
	}
}

func renderer(t *testing.T) *omail.Renderer {
	t.Helper()
	r, err := omail.NewRenderer(omail.Shop{Name: "Auto Parts Shop", From: "Auto Parts Shop <orders@shop.example>", OrderBaseURL: "https://shop.example/orders/"})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func sampleOrder() omail.Order {
	return omail.Order{
		ID: "0195b7a2-1c3d-7e4f-8a9b-0c1d2e3f4a5b", Name: "Ada Buyer", Email: "ada@example.com", Currency: "EUR",
		Lines: []omail.Line{
			{SKU: "BRK-PAD-1001", Name: "Brake pads, front axle", Quantity: 2, UnitPriceMinor: 4990, LineTotalMinor: 9980},
			{SKU: "FLT-OIL-2001", Name: "Oil filter <premium>", Quantity: 1, UnitPriceMinor: 899, LineTotalMinor: 899},
		},
		SubtotalMinor: 10879, ShippingMinor: 990, TotalMinor: 11869, Express: true,
		Address:  omail.Address{Name: "Ada Buyer", Line1: "Hauptstr. 1", City: "Berlin", PostalCode: "10115", Country: "DE"},
		PlacedAt: time.Date(2025, 11, 3, 9, 15, 0, 0, time.UTC),
	}
}

// parts decodes a message into its headers and its text and HTML bodies, as a mail client would.
func parts(t *testing.T, raw []byte) (mail.Header, string, string) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("parse message: %v\n%s", err, raw)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("content type %q (%v), want multipart/alternative", msg.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	bodies := map[string]string{}
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if p.Header.Get("Content-Transfer-Encoding") != "quoted-printable" {
			t.Fatalf("part %s: encoding %q, want quoted-printable", p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"))
		}
		b, err := io.ReadAll(quotedprintable.NewReader(p))
		if err != nil {
			t.Fatal(err)
		}
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		bodies[ct] = string(b)
	}
	return msg.Header, bodies["text/plain"], bodies["text/html"]
}

func wantAll(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s lacks %q:\n%s", what, sub, s)
		}
	}
}

// Every kind renders a text and an HTML part with the lines, totals from minor units, the link,
// and for cancellations a buyer-facing explanation of each reason; the Message-ID is the same
// every time.
func TestRenderOrderEmails(t *testing.T) {
	t.Parallel()
	r := renderer(t)
	now := time.Date(2025, 11, 3, 9, 20, 0, 0, time.UTC)
	common := []string{"Ada Buyer", "Brake pads, front axle", "BRK-PAD-1001", "€49.90", "€99.80", "€8.99", "€108.79", "€9.90", "€118.69",
		"https://shop.example/orders/0195b7a2-1c3d-7e4f-8a9b-0c1d2e3f4a5b"}
	cases := []struct {
		kind, reason string
		refunded     bool
		subject      string
		text         []string
	}{
		{omail.KindOrderConfirmed, "", false, "Your order 0195B7A2 is confirmed", []string{"Your payment went through", "Hauptstr. 1", "10115 Berlin"}},
		{omail.KindOrderCancelled, "payment_declined", false, "Your order 0195B7A2 was cancelled: Your payment was declined", []string{"declined the payment", "You have not been charged."}},
		{omail.KindOrderCancelled, "out_of_stock", true, "Your order 0195B7A2 was cancelled: An item sold out", []string{"sold out", "Your payment of €118.69 has been refunded"}},
		{omail.KindOrderCancelled, "expired", true, "Your order 0195B7A2 was cancelled: The payment was not confirmed in time", []string{"reserved for you were released", "refunded"}},
		{omail.KindOrderCancelled, "invalid", false, "Your order 0195B7A2 was cancelled: We could not process the order", []string{"could not be verified", "You have not been charged."}},
		{omail.KindOrderCancelled, "duplicate", false, "Your order 0195B7A2 was cancelled: You had already placed this order", []string{"kept the first one", "You have not been charged."}},
		{omail.KindOrderShipped, "", false, "Your order 0195B7A2 is on its way", []string{"has shipped with DHL", "Tracking number: 00340434161094042557", "https://track.example/00340434161094042557"}},
	}
	for _, c := range cases {
		o := sampleOrder()
		o.Reason, o.Refunded = c.reason, c.refunded
		if c.kind == omail.KindOrderShipped {
			o.Shipment = omail.Shipment{Carrier: "DHL", TrackingNumber: "00340434161094042557", TrackingURL: "https://track.example/00340434161094042557"}
		}
		m, err := r.Order(c.kind, o, now)
		if err != nil {
			t.Fatalf("%s %s: %v", c.kind, c.reason, err)
		}
		raw, err := m.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		h, text, html := parts(t, raw)
		subject, _ := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
		if subject != c.subject {
			t.Errorf("%s %s subject: got %q, want %q", c.kind, c.reason, subject, c.subject)
		}
		if got, want := h.Get("Message-ID"), "<"+c.kind+".0195b7a2-1c3d-7e4f-8a9b-0c1d2e3f4a5b@shop.example>"; got != want {
			t.Errorf("Message-ID: got %q, want %q", got, want)
		}
		if to, err := mail.ParseAddress(h.Get("To")); err != nil || to.Address != "ada@example.com" || to.Name != "Ada Buyer" {
			t.Errorf("To: got %q (%v), want Ada Buyer <ada@example.com>", h.Get("To"), err)
		}
		wantAll(t, c.kind+" "+c.reason+" text", text, append(common, c.text...)...)
		wantAll(t, c.kind+" "+c.reason+" html", html, "Oil filter &lt;premium&gt;", "€118.69", `href="https://shop.example/orders/0195b7a2-1c3d-7e4f-8a9b-0c1d2e3f4a5b"`)
		if strings.Contains(html, "<premium>") {
			t.Errorf("html does not escape a product name:\n%s", html)
		}
		again, _ := r.Order(c.kind, o, now)
		raw2, _ := again.Bytes()
		if !bytes.Equal(raw, raw2) {
			t.Errorf("%s: the same e-mail rendered twice differs", c.kind)
		}
	}
}

func TestDailySummaryRenders(t *testing.T) {
	t.Parallel()
	m, err := renderer(t).DailySummary("ops@shop.example", omail.Summary{
		Day: "2025-11-02", Location: "Europe/Berlin",
		Totals: []omail.SummaryTotal{{Currency: "EUR", Orders: 12, Units: 30, RevenueMinor: 123450, CancelledOrders: 2,
			Cancellations: []omail.ReasonCount{{Reason: "payment_declined", Orders: 2}}}},
		TopSKUs:    []omail.SummaryRow{{Key: "BRK-PAD-1001", Category: "brakes", Currency: "EUR", Orders: 5, Units: 9, RevenueMinor: 44910}},
		Categories: []omail.SummaryRow{{Key: "brakes", Currency: "EUR", Orders: 7, Units: 12, RevenueMinor: 60000}},
	}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	raw, err := m.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	h, text, html := parts(t, raw)
	if got := h.Get("Message-ID"); got != "<daily_summary.2025-11-02@shop.example>" {
		t.Fatalf("Message-ID: got %q", got)
	}
	wantAll(t, "summary text", text, "2025-11-02", "Confirmed orders: 12", "€1234.50", "payment_declined: 2", "BRK-PAD-1001 (brakes): 9 units, €449.10", "brakes: 7 orders")
	wantAll(t, "summary html", html, "€1234.50", "BRK-PAD-1001")
}

func TestMessageRefusesHeaderInjection(t *testing.T) {
	t.Parallel()
	m := omail.Message{From: "a@shop.example", To: "b@example.com", Subject: "hi", MessageID: "<x@shop.example>", Text: "x",
		Headers: map[string]string{"X-Evil": "a\r\nBcc: victim@example.com"}}
	if _, err := m.Bytes(); !errors.Is(err, omail.ErrHeaderInjection) {
		t.Fatalf("got %v, want ErrHeaderInjection", err)
	}
	m.Headers = nil
	m.To = "b@example.com\r\nBcc: victim@example.com"
	if _, err := m.Bytes(); err == nil {
		t.Fatal("a recipient with a line break was accepted")
	}
}

// selfSigned returns a server certificate for 127.0.0.1 and a pool trusting it.
func selfSigned(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mailsink"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, pool
}

func sink(t *testing.T, cfg mailsink.Config) *mailsink.Sink {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	s, err := mailsink.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func client(t *testing.T, addr string, cfg omail.SMTPConfig) *omail.SMTP {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	cfg.Host = host
	cfg.Port, _ = strconv.Atoi(port)
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	return omail.NewSMTP(cfg)
}

func testMessage(t *testing.T, to string) omail.Message {
	t.Helper()
	o := sampleOrder()
	o.Email = to
	m, err := renderer(t).Order(omail.KindOrderConfirmed, o, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// The client against a real SMTP server: each TLS mode against a server with and without
// STARTTLS, AUTH PLAIN with good and bad credentials, and the class of each failure.
func TestSMTPModesAndFailures(t *testing.T) {
	t.Parallel()
	serverTLS, roots := selfSigned(t)
	plain := sink(t, mailsink.Config{})
	secure := sink(t, mailsink.Config{TLS: serverTLS, Username: "notifier", Password: "s3cret"})
	trust := &tls.Config{RootCAs: roots}
	refused := sink(t, mailsink.Config{})
	refused.RefuseRecipient("nobody@example.com")
	down := sink(t, mailsink.Config{})
	down.Reject(421, "service not available, try later")
	slow := sink(t, mailsink.Config{Latency: 2 * time.Second})
	closedLn, _ := net.Listen("tcp", "127.0.0.1:0")
	closedAddr := closedLn.Addr().String()
	_ = closedLn.Close()

	cases := []struct {
		name      string
		server    *mailsink.Sink
		addr      string
		cfg       omail.SMTPConfig
		to        string
		wantClass string // "" means delivered
		wantTLS   bool
		permanent bool
		maybe     bool
	}{
		{"off, plain server", plain, "", omail.SMTPConfig{TLS: omail.TLSOff}, "", "", false, false, false},
		{"opportunistic, plain server", plain, "", omail.SMTPConfig{TLS: omail.TLSOpportunistic}, "", "", false, false, false},
		{"required, plain server", plain, "", omail.SMTPConfig{TLS: omail.TLSRequired}, "", omail.ClassTLS, false, false, false},
		{"required, TLS server, auth", secure, "", omail.SMTPConfig{TLS: omail.TLSRequired, TLSBase: trust, Username: "notifier", Password: "s3cret"}, "", "", true, false, false},
		{"opportunistic, TLS server, auth", secure, "", omail.SMTPConfig{TLS: omail.TLSOpportunistic, TLSBase: trust, Username: "notifier", Password: "s3cret"}, "", "", true, false, false},
		{"required, untrusted certificate", secure, "", omail.SMTPConfig{TLS: omail.TLSRequired, Username: "notifier", Password: "s3cret"}, "", omail.ClassTLS, false, false, false},
		{"wrong password", secure, "", omail.SMTPConfig{TLS: omail.TLSRequired, TLSBase: trust, Username: "notifier", Password: "nope"}, "", omail.ClassAuth, false, false, false},
		{"no credentials where required", secure, "", omail.SMTPConfig{TLS: omail.TLSRequired, TLSBase: trust}, "", omail.ClassRejected, false, false, false},
		{"unknown recipient", refused, "", omail.SMTPConfig{TLS: omail.TLSOff}, "nobody@example.com", omail.ClassRecipient, false, true, false},
		{"server refusing for now", down, "", omail.SMTPConfig{TLS: omail.TLSOff}, "", omail.ClassRejected, false, false, false},
		{"server not listening", nil, closedAddr, omail.SMTPConfig{TLS: omail.TLSOff}, "", omail.ClassConnect, false, false, false},
		{"answer to DATA too slow", slow, "", omail.SMTPConfig{TLS: omail.TLSOff, Timeout: 500 * time.Millisecond}, "", omail.ClassTimeout, false, false, true},
	}
	for _, c := range cases {
		addr := c.addr
		if c.server != nil {
			addr = c.server.Addr()
		}
		to := c.to
		if to == "" {
			to = "ada+" + strings.ReplaceAll(c.name, " ", "-") + "@example.com"
			to = strings.ReplaceAll(strings.ReplaceAll(to, ",", ""), "'", "")
		}
		before := 0
		if c.server != nil {
			before = c.server.Count()
		}
		err := client(t, addr, c.cfg).Send(t.Context(), testMessage(t, to))
		if c.wantClass == "" {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
				continue
			}
			msgs := c.server.Messages()
			got := msgs[len(msgs)-1]
			if len(got.To) != 1 || got.To[0] != to || got.TLS != c.wantTLS || got.MessageID == "" {
				t.Errorf("%s: received to=%v tls=%v id=%q, want to=%s tls=%v", c.name, got.To, got.TLS, got.MessageID, to, c.wantTLS)
			}
			if c.cfg.Username != "" && got.Authed != c.cfg.Username {
				t.Errorf("%s: authenticated as %q, want %q", c.name, got.Authed, c.cfg.Username)
			}
			continue
		}
		var se *omail.SendError
		if !errors.As(err, &se) {
			t.Errorf("%s: got %v, want a SendError of class %s", c.name, err, c.wantClass)
			continue
		}
		if se.Class != c.wantClass || se.Permanent != c.permanent || se.MaybeDelivered != c.maybe {
			t.Errorf("%s: got class %s permanent=%v maybe=%v (%v), want %s permanent=%v maybe=%v",
				c.name, se.Class, se.Permanent, se.MaybeDelivered, se, c.wantClass, c.permanent, c.maybe)
		}
		if c.server != nil && c.server != slow && c.server.Count() != before {
			t.Errorf("%s: the server received a message despite the failure", c.name)
		}
	}
}
