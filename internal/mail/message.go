// Package mail renders orderpipe's e-mails and sends them over SMTP: one template pair (plain
// text and HTML, sent as multipart/alternative) per kind of e-mail, amounts formatted from
// integer minor units, a deterministic Message-ID per e-mail so that a duplicate (the one window
// the notifier cannot close, see docs/notifications.md) is recognisable as the same message, and
// an SMTP client with STARTTLS (required, opportunistic or off), AUTH PLAIN and errors classified
// as transient or permanent.
package mail

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"slices"
	"strings"
	"time"
)

// Kinds of e-mail. Each has a template pair; the kind is also the first half of the key under
// which the notifier claims an e-mail (kind, subject).
const (
	KindOrderConfirmed = "order_confirmed"
	KindOrderCancelled = "order_cancelled"
	KindOrderShipped   = "order_shipped"
	KindDailySummary   = "daily_summary"
)

// Message is one e-mail ready to send.
type Message struct {
	From      string // RFC 5322 address, with or without a display name
	To        string // one recipient address
	Subject   string
	MessageID string // "<id@domain>"; see MessageID
	Date      time.Time
	Text      string            // text/plain body
	HTML      string            // text/html body; optional
	Headers   map[string]string // extra headers (X-...), written in name order
}

// MessageID returns the deterministic Message-ID of the e-mail of kind about subject (an order
// id, a date), in the domain of the sender address from: the same e-mail always carries the same
// id, so mail clients and ops recognise a re-sent copy as the same message.
func MessageID(kind, subject, from string) string {
	domain := "orderpipe.invalid"
	if a, err := mail.ParseAddress(from); err == nil {
		if _, d, ok := strings.Cut(a.Address, "@"); ok && d != "" {
			domain = d
		}
	}
	return "<" + kind + "." + subject + "@" + domain + ">"
}

// EnvelopeFrom is the bare address of From (the SMTP MAIL FROM).
func (m Message) EnvelopeFrom() (string, error) {
	a, err := mail.ParseAddress(m.From)
	if err != nil {
		return "", fmt.Errorf("from address %q: %w", m.From, err)
	}
	return a.Address, nil
}

// EnvelopeTo is the bare address of To (the SMTP RCPT TO).
func (m Message) EnvelopeTo() (string, error) {
	a, err := mail.ParseAddress(m.To)
	if err != nil {
		return "", fmt.Errorf("recipient address %q: %w", m.To, err)
	}
	return a.Address, nil
}

// ErrHeaderInjection means a header value contains a line break.
var ErrHeaderInjection = errors.New("line break in header value")

// Bytes returns the message in RFC 5322 form with CRLF line ends: headers, then a
// multipart/alternative body (text, then HTML) in quoted-printable UTF-8, or a single text part
// without HTML. The MIME boundary derives from the Message-ID, so the same message renders to the
// same bytes.
func (m Message) Bytes() ([]byte, error) {
	from, err := mail.ParseAddress(m.From)
	if err != nil {
		return nil, fmt.Errorf("from address %q: %w", m.From, err)
	}
	to, err := mail.ParseAddress(m.To)
	if err != nil {
		return nil, fmt.Errorf("recipient address %q: %w", m.To, err)
	}
	if m.MessageID == "" || !strings.HasPrefix(m.MessageID, "<") || !strings.HasSuffix(m.MessageID, ">") {
		return nil, fmt.Errorf("message id %q: want <id@domain>", m.MessageID)
	}
	var b bytes.Buffer
	header := func(name, value string) error {
		if strings.ContainsAny(value, "\r\n") {
			return fmt.Errorf("header %s: %w", name, ErrHeaderInjection)
		}
		b.WriteString(name + ": " + value + "\r\n")
		return nil
	}
	date := m.Date
	if date.IsZero() {
		date = time.Now()
	}
	std := [][2]string{
		{"From", from.String()},
		{"To", to.String()},
		{"Subject", mime.QEncoding.Encode("utf-8", m.Subject)},
		{"Date", date.Format(time.RFC1123Z)},
		{"Message-ID", m.MessageID},
		{"MIME-Version", "1.0"},
	}
	names := make([]string, 0, len(m.Headers))
	for k := range m.Headers {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		std = append(std, [2]string{k, m.Headers[k]})
	}
	for _, h := range std {
		if err := header(h[0], h[1]); err != nil {
			return nil, err
		}
	}
	if m.HTML == "" {
		b.WriteString("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
		if err := writeQP(&b, m.Text); err != nil {
			return nil, err
		}
		return b.Bytes(), nil
	}
	sum := sha256.Sum256([]byte(m.MessageID))
	boundary := "=_orderpipe_" + hex.EncodeToString(sum[:12])
	b.WriteString("Content-Type: multipart/alternative; boundary=\"" + boundary + "\"\r\n\r\n")
	b.WriteString("This is a multi-part message in MIME format.\r\n")
	for _, part := range []struct{ ctype, body string }{{"text/plain", m.Text}, {"text/html", m.HTML}} {
		b.WriteString("\r\n--" + boundary + "\r\n")
		b.WriteString("Content-Type: " + part.ctype + "; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
		if err := writeQP(&b, part.body); err != nil {
			return nil, err
		}
	}
	b.WriteString("\r\n--" + boundary + "--\r\n")
	return b.Bytes(), nil
}

// writeQP writes body quoted-printable with CRLF line ends.
func writeQP(b *bytes.Buffer, body string) error {
	body = strings.ReplaceAll(body, "\r\n", "\n")
	body = strings.ReplaceAll(body, "\n", "\r\n")
	w := quotedprintable.NewWriter(b)
	if _, err := w.Write([]byte(body)); err != nil {
		return fmt.Errorf("encode body: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("encode body: %w", err)
	}
	if !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
		b.WriteString("\r\n")
	}
	return nil
}
