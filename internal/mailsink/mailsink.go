// Package mailsink is a local SMTP server that keeps what it receives, for `make run` and for
// tests: every message is kept in memory and, with a directory, written there as an .eml file a
// developer can open in any mail client; Handler serves a small listing page. It speaks real SMTP
// (github.com/emersion/go-smtp): EHLO, optional STARTTLS and AUTH PLAIN, MAIL, RCPT, DATA.
//
// Tests steer it: Latency slows every DATA answer (a slow provider), Reject answers MAIL with a
// chosen reply (an outage that still accepts connections, or a policy refusal), and OnMessage
// runs after a message is stored but before the client hears that it was accepted.
package mailsink

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Config configures a sink.
type Config struct {
	Addr string // SMTP listen address; "127.0.0.1:0" picks a port
	Dir  string // directory for .eml files; empty keeps messages in memory only
	// Latency is how long the sink waits before answering the end of DATA.
	Latency time.Duration
	// TLS, when set, makes the sink offer STARTTLS.
	TLS *tls.Config
	// Username and Password, when set, make AUTH PLAIN mandatory before MAIL.
	Username, Password string
	// MaxMessageBytes caps a message; zero means 10 MiB.
	MaxMessageBytes int64
	Log             *slog.Logger // nil discards
}

// Message is one received message.
type Message struct {
	From      string   // envelope sender
	To        []string // envelope recipients
	Raw       []byte   // the message as received (CRLF line ends)
	Received  time.Time
	File      string // the .eml file, when the sink has a directory
	TLS       bool   // the conversation was upgraded with STARTTLS
	Authed    string // the user that authenticated, if any
	MessageID string
	Subject   string // decoded
	Header    mail.Header
}

// Sink is a running SMTP sink.
type Sink struct {
	cfg     Config
	srv     *smtp.Server
	ln      net.Listener
	log     *slog.Logger
	latency atomic.Int64
	reject  atomic.Pointer[smtp.SMTPError]
	mu      sync.Mutex
	msgs    []Message
	hook    func(Message)
	refused map[string]bool
	seq     atomic.Int64
}

// Start listens on cfg.Addr and serves until Close.
func Start(cfg Config) (*Sink, error) {
	if cfg.MaxMessageBytes == 0 {
		cfg.MaxMessageBytes = 10 << 20
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Dir != "" {
		if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("mail sink directory: %w", err)
		}
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("mail sink listen on %s: %w", cfg.Addr, err)
	}
	s := &Sink{cfg: cfg, ln: ln, log: cfg.Log}
	s.latency.Store(int64(cfg.Latency))
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) { return &session{sink: s, conn: c}, nil }))
	srv.Domain = "mailsink.localhost"
	srv.MaxMessageBytes = cfg.MaxMessageBytes
	srv.MaxRecipients = 50
	srv.ReadTimeout, srv.WriteTimeout = time.Minute, time.Minute
	srv.AllowInsecureAuth = true // a loopback development sink
	srv.TLSConfig = cfg.TLS
	srv.ErrorLog = errorLog{cfg.Log}
	s.srv = srv
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, smtp.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			s.log.Error("mail sink stopped", "err", err)
		}
	}()
	return s, nil
}

// Addr is the SMTP address the sink listens on.
func (s *Sink) Addr() string { return s.ln.Addr().String() }

// Close stops the sink; open conversations are cut.
func (s *Sink) Close() error { return s.srv.Close() }

// SetLatency changes how long the sink waits before answering the end of DATA.
func (s *Sink) SetLatency(d time.Duration) { s.latency.Store(int64(d)) }

// Reject makes the sink answer every MAIL command with code and text (421 or 451: a temporary
// outage; 550 or 554: a refusal) until Reject(0, "").
func (s *Sink) Reject(code int, text string) {
	if code == 0 {
		s.reject.Store(nil)
		return
	}
	s.reject.Store(&smtp.SMTPError{Code: code, Message: text})
}

// RefuseRecipient makes the sink answer RCPT TO addr with 550 (no such mailbox).
func (s *Sink) RefuseRecipient(addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refused == nil {
		s.refused = map[string]bool{}
	}
	s.refused[strings.ToLower(addr)] = true
}

// OnMessage sets a function called with each message after it is stored and before the client
// is told it was accepted (nil removes it).
func (s *Sink) OnMessage(fn func(Message)) {
	s.mu.Lock()
	s.hook = fn
	s.mu.Unlock()
}

// Messages returns a copy of the messages received so far, in arrival order.
func (s *Sink) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Count is how many messages the sink received.
func (s *Sink) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs)
}

func (s *Sink) store(from string, to []string, raw []byte, tlsOn bool, user string) (Message, error) {
	m := s.parse(raw)
	m.From, m.To, m.Received, m.TLS, m.Authed = from, to, time.Now(), tlsOn, user
	if s.cfg.Dir != "" {
		name := fmt.Sprintf("%s-%06d-%s.eml", m.Received.UTC().Format("20060102T150405.000000"), s.seq.Add(1), fileSafe(m.MessageID))
		path := filepath.Join(s.cfg.Dir, name)
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, raw, 0o644); err != nil {
			return Message{}, fmt.Errorf("write %s: %w", tmp, err)
		}
		if err := os.Rename(tmp, path); err != nil {
			return Message{}, fmt.Errorf("rename %s: %w", tmp, err)
		}
		m.File = path
	}
	s.mu.Lock()
	s.msgs = append(s.msgs, m)
	hook := s.hook
	s.mu.Unlock()
	s.log.Info("mail received", "from", from, "to", strings.Join(to, ","), "subject", m.Subject, "message_id", m.MessageID, "file", m.File)
	if hook != nil {
		hook(m)
	}
	return m, nil
}

// parse reads the headers of raw into a Message.
func (s *Sink) parse(raw []byte) Message {
	m := Message{Raw: raw, Header: mail.Header{}}
	if parsed, err := mail.ReadMessage(bytes.NewReader(raw)); err == nil {
		m.Header = parsed.Header
		m.MessageID = parsed.Header.Get("Message-ID")
		m.Subject = parsed.Header.Get("Subject")
		if dec, err := new(mime.WordDecoder).DecodeHeader(m.Subject); err == nil {
			m.Subject = dec
		}
	}
	return m
}

func fileSafe(id string) string {
	id = strings.Trim(id, "<>")
	var b strings.Builder
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_', r == '@':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
		if b.Len() >= 100 {
			break
		}
	}
	if b.Len() == 0 {
		return "no-id"
	}
	return b.String()
}

// session is one SMTP conversation.
type session struct {
	sink   *Sink
	conn   *smtp.Conn
	authed bool
	user   string
	from   string
	to     []string
}

func (ss *session) AuthMechanisms() []string {
	if ss.sink.cfg.Username == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain || ss.sink.cfg.Username == "" {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(_, username, password string) error {
		if username != ss.sink.cfg.Username || password != ss.sink.cfg.Password {
			return smtp.ErrAuthFailed
		}
		ss.authed, ss.user = true, username
		return nil
	}), nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.sink.cfg.Username != "" && !ss.authed {
		return smtp.ErrAuthRequired
	}
	if e := ss.sink.reject.Load(); e != nil {
		return e
	}
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.sink.mu.Lock()
	refused := ss.sink.refused[strings.ToLower(to)]
	ss.sink.mu.Unlock()
	if refused {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such mailbox"}
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if d := time.Duration(ss.sink.latency.Load()); d > 0 {
		time.Sleep(d)
	}
	_, tlsOn := ss.conn.TLSConnectionState()
	if _, err := ss.sink.store(ss.from, append([]string(nil), ss.to...), raw, tlsOn, ss.user); err != nil {
		ss.sink.log.Error("mail not stored", "err", err)
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "cannot store the message"}
	}
	return nil
}

func (ss *session) Reset() { ss.from, ss.to = "", nil }

func (ss *session) Logout() error { return nil }

type errorLog struct{ log *slog.Logger }

func (e errorLog) Printf(format string, v ...any) { e.log.Debug(fmt.Sprintf(format, v...)) }
func (e errorLog) Println(v ...any)               { e.log.Debug(fmt.Sprint(v...)) }
