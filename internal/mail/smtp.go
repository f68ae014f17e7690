package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"net/textproto"
	"os"
	"strconv"
	"time"
)

// TLS modes of the SMTP connection.
const (
	// TLSRequired upgrades every connection with STARTTLS and refuses to send when the server
	// does not offer it or the certificate does not verify.
	TLSRequired = "required"
	// TLSOpportunistic upgrades with STARTTLS when the server offers it and sends in clear text
	// otherwise (credentials are never sent in clear text, except to a loopback server).
	TLSOpportunistic = "opportunistic"
	// TLSOff never upgrades (a local relay or a development sink).
	TLSOff = "off"
)

// Failure classes of a send, the class label of the notifier's failure metric.
const (
	ClassConnect   = "connect"   // the server could not be reached, or hung up before greeting
	ClassTLS       = "tls"       // STARTTLS missing (required) or the handshake failed
	ClassAuth      = "auth"      // authentication refused or impossible
	ClassRecipient = "recipient" // the server refused the recipient with a 5xx reply: permanent
	ClassRejected  = "rejected"  // any other 4xx or 5xx reply (sender, data, policy)
	ClassTimeout   = "timeout"   // the server did not answer within SMTP_TIMEOUT
	ClassNetwork   = "network"   // the connection broke during the conversation
	ClassMessage   = "message"   // the message itself cannot be built (bad address): permanent
)

// SendError is why a send failed.
type SendError struct {
	Class string // one of the Class constants
	Code  int    // the SMTP reply code, 0 when there was no reply
	// Permanent: sending again cannot help (the recipient does not exist, the message cannot be
	// built). Everything else is transient: the server may be back, the policy may change.
	Permanent bool
	// MaybeDelivered: the whole message was written but the server's final answer never came
	// (timeout, broken connection). The server may have accepted it.
	MaybeDelivered bool
	Err            error
}

func (e *SendError) Error() string {
	if e.Code != 0 {
		return fmt.Sprintf("smtp %s (%d): %v", e.Class, e.Code, e.Err)
	}
	return fmt.Sprintf("smtp %s: %v", e.Class, e.Err)
}

func (e *SendError) Unwrap() error { return e.Err }

// SMTPConfig configures the SMTP client.
type SMTPConfig struct {
	Host     string
	Port     int
	TLS      string // TLSRequired, TLSOpportunistic or TLSOff
	Username string // AUTH PLAIN when set
	Password string
	// Timeout bounds one whole send: connect, greeting, TLS, authentication and the
	// transaction.
	Timeout  time.Duration
	HeloName string      // the EHLO name; "localhost" when empty
	TLSBase  *tls.Config // base TLS settings (root CAs); ServerName defaults to Host
}

// SMTP sends e-mail to one SMTP server (submission or relay), one connection per message. The
// client is Go's net/smtp: small, maintained with the standard library, and it gives what the
// notifier needs on a single connection (EHLO, STARTTLS when offered, AUTH PLAIN that refuses
// clear text except to loopback, MAIL, RCPT, DATA) with replies as textproto errors to classify.
type SMTP struct {
	cfg SMTPConfig
}

// NewSMTP returns a client for cfg.
func NewSMTP(cfg SMTPConfig) *SMTP {
	if cfg.HeloName == "" {
		cfg.HeloName = "localhost"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	return &SMTP{cfg: cfg}
}

// Addr is the server's host:port.
func (s *SMTP) Addr() string { return net.JoinHostPort(s.cfg.Host, strconv.Itoa(s.cfg.Port)) }

// Send delivers m. The error, if any, is a *SendError.
func (s *SMTP) Send(ctx context.Context, m Message) error {
	raw, err := m.Bytes()
	if err != nil {
		return &SendError{Class: ClassMessage, Permanent: true, Err: err}
	}
	from, err := m.EnvelopeFrom()
	if err != nil {
		return &SendError{Class: ClassMessage, Permanent: true, Err: err}
	}
	to, err := m.EnvelopeTo()
	if err != nil {
		return &SendError{Class: ClassMessage, Permanent: true, Err: err}
	}
	deadline := time.Now().Add(s.cfg.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(dctx, "tcp", s.Addr())
	if err != nil {
		return classify(ClassConnect, err, false)
	}
	defer conn.Close()
	_ = conn.SetDeadline(deadline)
	// Cancelling ctx interrupts whatever the conversation is waiting for.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	c, err := smtp.NewClient(conn, s.cfg.Host)
	if err != nil {
		return classify(ClassConnect, err, false)
	}
	defer c.Close()
	if err := c.Hello(s.cfg.HeloName); err != nil {
		return classify(ClassConnect, err, false)
	}
	if s.cfg.TLS != TLSOff {
		if ok, _ := c.Extension("STARTTLS"); ok {
			tc := &tls.Config{MinVersion: tls.VersionTLS12}
			if s.cfg.TLSBase != nil {
				tc = s.cfg.TLSBase.Clone()
			}
			if tc.ServerName == "" {
				tc.ServerName = s.cfg.Host
			}
			if err := c.StartTLS(tc); err != nil {
				return classify(ClassTLS, err, false)
			}
		} else if s.cfg.TLS == TLSRequired {
			return &SendError{Class: ClassTLS, Err: fmt.Errorf("%s offers no STARTTLS and SMTP_TLS is required", s.Addr())}
		}
	}
	if s.cfg.Username != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			return &SendError{Class: ClassAuth, Err: fmt.Errorf("%s offers no AUTH but a username is configured", s.Addr())}
		}
		if err := c.Auth(smtp.PlainAuth("", s.cfg.Username, s.cfg.Password, s.cfg.Host)); err != nil {
			return classify(ClassAuth, err, false)
		}
	}
	if err := c.Mail(from); err != nil {
		return classify(ClassRejected, err, false)
	}
	if err := c.Rcpt(to); err != nil {
		var tp *textproto.Error
		if errors.As(err, &tp) && tp.Code >= 500 {
			return &SendError{Class: ClassRecipient, Code: tp.Code, Permanent: true, Err: fmt.Errorf("recipient %s: %w", to, err)}
		}
		return classify(ClassRejected, err, false)
	}
	w, err := c.Data()
	if err != nil {
		return classify(ClassRejected, err, false)
	}
	if _, err := w.Write(raw); err != nil {
		return classify(ClassNetwork, err, false)
	}
	// Close sends the final dot and reads the server's verdict: if that answer is lost, the
	// server may have accepted the message.
	if err := w.Close(); err != nil {
		return classify(ClassRejected, err, true)
	}
	_ = c.Quit() // accepted: a failing QUIT changes nothing
	return nil
}

// classify turns an error of one step into a SendError: a reply keeps the step's class and its
// code; a timeout is ClassTimeout and a broken connection ClassNetwork (both may have delivered
// when afterData).
func classify(class string, err error, afterData bool) *SendError {
	var tp *textproto.Error
	if errors.As(err, &tp) {
		return &SendError{Class: class, Code: tp.Code, Err: err}
	}
	var ne net.Error
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return &SendError{Class: ClassTimeout, MaybeDelivered: afterData, Err: err}
	}
	if class == ClassConnect || class == ClassTLS || class == ClassAuth {
		return &SendError{Class: class, Err: err}
	}
	return &SendError{Class: ClassNetwork, MaybeDelivered: afterData, Err: err}
}
