// Package paysim is a payment-provider simulator: a small REST API over real HTTP that verifies
// tokens and captures payments with realistic latency, random declines and transient faults,
// idempotent by the Idempotency-Key header. The payment provider is a third party, so tests,
// `make run` and load tests talk to this simulator through the real client path
// (internal/payment), and its counters let them check that no order was captured twice.
//
// API (JSON bodies; errors are {"error": {"code", "message"}}):
//
//	POST /v1/charges          Idempotency-Key: <order id>
//	                          {order_id, token, method, amount_minor, currency}
//	                          201 new, 200 replay: {id, order_id, status, decline_code, amount_minor, currency, ...}
//	                          400 invalid, 409 idempotency_key_reused (same key, other parameters), 500/503 faults
//	POST /v1/refunds          Idempotency-Key: <order id>   {order_id, amount_minor, currency}
//	                          201 new, 200 replay: {id, charge_id, order_id, status: "refunded", ...}
//	                          404 no captured charge, 422 not the captured amount (full refunds only)
//	GET  /v1/charges          every charge, or ?order_id=<id> for one order's
//	GET  /v1/stats            counters (Stats)
//	POST /v1/admin/outage     {down: true|false}: while down every charge and refund answers 503
//	GET  /healthz             200, or 503 while down
//
// Tokens decide special behaviour by prefix: tok_decline (card_declined), tok_insufficient
// (insufficient_funds), tok_expired (expired_token), tok_fail (always 503), tok_hang (no answer
// until the client gives up), tok_slow (three times the latency), tok_lost (the first attempt
// captures, then the connection drops before the answer: only idempotency saves the retry).
// Every other token is declined at Config.DeclineRate. Random faults (503, 500 or a dropped
// connection) happen at Config.FaultRate per attempt and are decided before anything is
// recorded, so a faulted attempt charged nothing.
//
// Random decisions are derived from Config.Seed, the idempotency key and the attempt number, so
// the same seed and keys give the same declines and faults whatever the request interleaving.
package paysim

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"maps"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config shapes the simulator's behaviour.
type Config struct {
	Latency       time.Duration // base latency of every charge and refund
	LatencyJitter time.Duration // uniform extra latency in [0, LatencyJitter]
	DeclineRate   float64       // share of ordinary tokens declined (0..1)
	FaultRate     float64       // share of attempts that fail transiently (0..1)
	Seed          int64         // seed of the decline and fault decisions
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.Latency < 0 || c.LatencyJitter < 0:
		return fmt.Errorf("latency %s and jitter %s: want non-negative durations", c.Latency, c.LatencyJitter)
	case c.DeclineRate < 0 || c.DeclineRate > 1:
		return fmt.Errorf("decline rate %g: want 0..1", c.DeclineRate)
	case c.FaultRate < 0 || c.FaultRate > 1:
		return fmt.Errorf("fault rate %g: want 0..1", c.FaultRate)
	}
	return nil
}

// Charge is one payment object as the simulator lists it.
type Charge struct {
	ID             string    `json:"id"`
	OrderID        string    `json:"order_id"`
	IdempotencyKey string    `json:"idempotency_key"`
	Status         string    `json:"status"` // captured or declined
	DeclineCode    string    `json:"decline_code,omitempty"`
	AmountMinor    int64     `json:"amount_minor"`
	Currency       string    `json:"currency"`
	Method         string    `json:"method"`
	Refunded       bool      `json:"refunded"`
	Created        time.Time `json:"created"`

	token string
}

// Refund is one refund of a captured charge.
type Refund struct {
	ID          string    `json:"id"`
	ChargeID    string    `json:"charge_id"`
	OrderID     string    `json:"order_id"`
	Status      string    `json:"status"` // refunded
	AmountMinor int64     `json:"amount_minor"`
	Currency    string    `json:"currency"`
	Created     time.Time `json:"created"`
}

// Stats are the simulator's counters since it started.
type Stats struct {
	Requests       int64            `json:"requests"`              // charge and refund requests received
	Captures       int64            `json:"captures"`              // charges captured (each at most once per key)
	Declines       int64            `json:"declines"`              // charges declined
	Refunds        int64            `json:"refunds"`               // refunds made
	Duplicates     int64            `json:"duplicates_suppressed"` // replays answered from the first result
	Faults         int64            `json:"faults"`                // injected failures: 5xx, dropped connections, outage
	Conflicts      int64            `json:"conflicts"`             // a key reused with other parameters (409)
	Rejected       int64            `json:"rejected"`              // invalid requests (400, 404, 422)
	Abandoned      int64            `json:"abandoned"`             // the client gave up before the answer
	CapturedOrders int              `json:"captured_orders"`       // distinct order ids with a capture
	DoubleCaptured []string         `json:"double_captured"`       // order ids captured more than once: must stay empty
	CapturedMinor  map[string]int64 `json:"captured_minor"`        // captured amounts by currency
	RefundedMinor  map[string]int64 `json:"refunded_minor"`        // refunded amounts by currency
}

// Server is the simulator. Its handler is safe for concurrent use.
type Server struct {
	cfg     Config
	down    atomic.Bool
	quit    chan struct{} // closed when Run stops: releases hanging requests
	quitted sync.Once

	mu       sync.Mutex
	seq      uint64
	charges  map[string]*Charge   // by idempotency key
	all      []*Charge            // in creation order
	byOrder  map[string][]*Charge // captured charges by order id
	refunds  map[string]*Refund   // by idempotency key
	refundOf map[string]*Refund   // by charge id
	attempts map[string]uint64    // attempts per operation and key, for fault decisions
	stats    Stats
}

// New returns a simulator. It panics on an invalid configuration (check it with Validate).
func New(cfg Config) *Server {
	if err := cfg.Validate(); err != nil {
		panic("paysim: " + err.Error())
	}
	return &Server{
		cfg:      cfg,
		quit:     make(chan struct{}),
		charges:  map[string]*Charge{},
		byOrder:  map[string][]*Charge{},
		refunds:  map[string]*Refund{},
		refundOf: map[string]*Refund{},
		attempts: map[string]uint64{},
		stats:    Stats{CapturedMinor: map[string]int64{}, RefundedMinor: map[string]int64{}},
	}
}

// Handler returns the simulator's HTTP API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/charges", s.postCharge)
	mux.HandleFunc("GET /v1/charges", s.listCharges)
	mux.HandleFunc("POST /v1/refunds", s.postRefund)
	mux.HandleFunc("GET /v1/stats", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, s.Stats()) })
	mux.HandleFunc("POST /v1/admin/outage", s.postOutage)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if s.down.Load() {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "down"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	return mux
}

// SetDown starts (true) or ends (false) an outage: while down, every charge and refund fails
// with 503 and nothing is recorded.
func (s *Server) SetDown(down bool) { s.down.Store(down) }

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.DoubleCaptured = []string{}
	for order, cs := range s.byOrder {
		if len(cs) > 1 {
			st.DoubleCaptured = append(st.DoubleCaptured, order)
		}
	}
	st.CapturedOrders = len(s.byOrder)
	st.CapturedMinor = maps.Clone(s.stats.CapturedMinor)
	st.RefundedMinor = maps.Clone(s.stats.RefundedMinor)
	return st
}

type chargeBody struct {
	OrderID     string `json:"order_id"`
	Token       string `json:"token"`
	Method      string `json:"method"`
	AmountMinor int64  `json:"amount_minor"`
	Currency    string `json:"currency"`
}

func (s *Server) postCharge(w http.ResponseWriter, r *http.Request) {
	s.count(func(st *Stats) { st.Requests++ })
	key := r.Header.Get("Idempotency-Key")
	var b chargeBody
	if msg := decode(w, r, &b); msg != "" {
		s.reject(w, http.StatusBadRequest, "invalid_request", msg)
		return
	}
	if b.OrderID == "" {
		b.OrderID = key
	}
	if msg := validCharge(key, b); msg != "" {
		s.reject(w, http.StatusBadRequest, "invalid_request", msg)
		return
	}
	attempt := s.attempt("charge", key)
	if !s.prelude(w, r, b.Token, "charge", key, attempt) {
		return
	}

	s.mu.Lock()
	ch, replay := s.charges[key]
	switch {
	case replay && (ch.OrderID != b.OrderID || ch.token != b.Token || ch.Method != b.Method ||
		ch.AmountMinor != b.AmountMinor || ch.Currency != b.Currency):
		s.stats.Conflicts++
		s.mu.Unlock()
		writeError(w, http.StatusConflict, "idempotency_key_reused",
			fmt.Sprintf("key %q was used for %d %s with other parameters", key, ch.AmountMinor, ch.Currency))
		return
	case replay:
		s.stats.Duplicates++
	default:
		ch = s.newCharge(key, b)
	}
	reply := *ch
	s.mu.Unlock()

	if !replay && strings.HasPrefix(b.Token, "tok_lost") && attempt == 1 {
		s.count(func(st *Stats) { st.Faults++ })
		panic(http.ErrAbortHandler) // captured, but the answer never arrives
	}
	status := http.StatusCreated
	if replay {
		w.Header().Set("Idempotent-Replayed", "true")
		status = http.StatusOK
	}
	writeJSON(w, status, reply)
}

// newCharge decides and records a charge; s.mu is held.
func (s *Server) newCharge(key string, b chargeBody) *Charge {
	s.seq++
	ch := &Charge{
		ID: s.id("ch", s.seq), OrderID: b.OrderID, IdempotencyKey: key, Method: b.Method,
		AmountMinor: b.AmountMinor, Currency: b.Currency, Created: time.Now().UTC(), token: b.Token,
		Status: "captured",
	}
	if code := s.decline(key, b.Token); code != "" {
		ch.Status, ch.DeclineCode = "declined", code
		s.stats.Declines++
	} else {
		s.stats.Captures++
		s.stats.CapturedMinor[ch.Currency] += ch.AmountMinor
		s.byOrder[ch.OrderID] = append(s.byOrder[ch.OrderID], ch)
	}
	s.charges[key] = ch
	s.all = append(s.all, ch)
	return ch
}

func (s *Server) decline(key, token string) string {
	switch {
	case strings.HasPrefix(token, "tok_decline"):
		return "card_declined"
	case strings.HasPrefix(token, "tok_insufficient"):
		return "insufficient_funds"
	case strings.HasPrefix(token, "tok_expired"):
		return "expired_token"
	case s.chance("decline", key, 0) >= s.cfg.DeclineRate:
		return ""
	}
	switch u := s.chance("decline-code", key, 0); {
	case u < 0.6:
		return "card_declined"
	case u < 0.9:
		return "insufficient_funds"
	default:
		return "expired_token"
	}
}

type refundBody struct {
	OrderID     string `json:"order_id"`
	AmountMinor int64  `json:"amount_minor"`
	Currency    string `json:"currency"`
}

func (s *Server) postRefund(w http.ResponseWriter, r *http.Request) {
	s.count(func(st *Stats) { st.Requests++ })
	key := r.Header.Get("Idempotency-Key")
	var b refundBody
	if msg := decode(w, r, &b); msg != "" {
		s.reject(w, http.StatusBadRequest, "invalid_request", msg)
		return
	}
	if b.OrderID == "" {
		b.OrderID = key
	}
	switch {
	case key == "" || len(key) > 255:
		s.reject(w, http.StatusBadRequest, "invalid_request", "Idempotency-Key: want 1..255 characters")
		return
	case b.AmountMinor <= 0 || !validCurrency(b.Currency):
		s.reject(w, http.StatusBadRequest, "invalid_request", "want a positive amount_minor and an ISO 4217 currency")
		return
	}
	if !s.prelude(w, r, "", "refund", key, s.attempt("refund", key)) {
		return
	}

	s.mu.Lock()
	if rf, ok := s.refunds[key]; ok {
		if rf.OrderID != b.OrderID || rf.AmountMinor != b.AmountMinor || rf.Currency != b.Currency {
			s.stats.Conflicts++
			s.mu.Unlock()
			writeError(w, http.StatusConflict, "idempotency_key_reused", fmt.Sprintf("key %q was used for another refund", key))
			return
		}
		s.stats.Duplicates++
		reply := *rf
		s.mu.Unlock()
		w.Header().Set("Idempotent-Replayed", "true")
		writeJSON(w, http.StatusOK, reply)
		return
	}
	var target *Charge
	for _, ch := range s.byOrder[b.OrderID] {
		if target == nil || (target.Refunded && !ch.Refunded) {
			target = ch
		}
	}
	switch {
	case target == nil:
		s.stats.Rejected++
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, "charge_not_found", fmt.Sprintf("order %q has no captured charge", b.OrderID))
		return
	case target.AmountMinor != b.AmountMinor || target.Currency != b.Currency:
		s.stats.Rejected++
		s.mu.Unlock()
		writeError(w, http.StatusUnprocessableEntity, "amount_mismatch",
			fmt.Sprintf("only full refunds: charge %s captured %d %s", target.ID, target.AmountMinor, target.Currency))
		return
	}
	rf, replay := s.refundOf[target.ID]
	if replay {
		s.stats.Duplicates++
	} else {
		s.seq++
		rf = &Refund{
			ID: s.id("re", s.seq), ChargeID: target.ID, OrderID: target.OrderID, Status: "refunded",
			AmountMinor: target.AmountMinor, Currency: target.Currency, Created: time.Now().UTC(),
		}
		target.Refunded = true
		s.refundOf[target.ID] = rf
		s.stats.Refunds++
		s.stats.RefundedMinor[rf.Currency] += rf.AmountMinor
	}
	s.refunds[key] = rf
	reply := *rf
	s.mu.Unlock()
	status := http.StatusCreated
	if replay {
		w.Header().Set("Idempotent-Replayed", "true")
		status = http.StatusOK
	}
	writeJSON(w, status, reply)
}

// prelude plays what happens before the provider decides: an outage, the network and
// processing latency, and injected faults. It reports whether the request goes on; if not, the
// answer (or the dropped connection) has been given and nothing was recorded.
func (s *Server) prelude(w http.ResponseWriter, r *http.Request, token, op, key string, attempt uint64) bool {
	if s.down.Load() {
		s.count(func(st *Stats) { st.Faults++ })
		writeError(w, http.StatusServiceUnavailable, "provider_unavailable", "the provider is down (simulated outage)")
		return false
	}
	wait := s.cfg.Latency
	if s.cfg.LatencyJitter > 0 {
		wait += rand.N(s.cfg.LatencyJitter + 1)
	}
	var hang <-chan struct{}
	switch {
	case strings.HasPrefix(token, "tok_slow"):
		wait *= 3
	case strings.HasPrefix(token, "tok_hang"):
		hang = make(chan struct{}) // never closed: wait for the client or shutdown
	}
	if !s.sleep(r, wait, hang) {
		// The client left (the write goes nowhere) or the simulator is stopping.
		writeError(w, http.StatusServiceUnavailable, "provider_unavailable", "the provider is shutting down")
		return false
	}
	if strings.HasPrefix(token, "tok_fail") {
		s.count(func(st *Stats) { st.Faults++ })
		writeError(w, http.StatusServiceUnavailable, "provider_unavailable", "token always fails (tok_fail)")
		return false
	}
	if s.chance(op+"-fault", key, attempt) >= s.cfg.FaultRate {
		return true
	}
	s.count(func(st *Stats) { st.Faults++ })
	switch u := s.chance(op+"-fault-kind", key, attempt); {
	case u < 0.6:
		writeError(w, http.StatusServiceUnavailable, "provider_unavailable", "simulated fault")
	case u < 0.85:
		writeError(w, http.StatusInternalServerError, "internal_error", "simulated fault")
	default:
		panic(http.ErrAbortHandler) // the connection drops without an answer
	}
	return false
}

// sleep waits d (or until hang is closed, if given), and reports false if the client gave up
// or the server stopped first.
func (s *Server) sleep(r *http.Request, d time.Duration, hang <-chan struct{}) bool {
	var timer <-chan time.Time
	if hang == nil {
		if d <= 0 {
			return true
		}
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-timer:
		return true
	case <-hang:
		return true
	case <-r.Context().Done():
	case <-s.quit:
	}
	s.count(func(st *Stats) { st.Abandoned++ })
	return false
}

func (s *Server) listCharges(w http.ResponseWriter, r *http.Request) {
	order := r.URL.Query().Get("order_id")
	s.mu.Lock()
	out := []Charge{}
	for _, ch := range s.all {
		if order == "" || ch.OrderID == order {
			out = append(out, *ch)
		}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string][]Charge{"charges": out})
}

func (s *Server) postOutage(w http.ResponseWriter, r *http.Request) {
	var b struct {
		Down *bool `json:"down"`
	}
	if msg := decode(w, r, &b); msg != "" || b.Down == nil {
		writeError(w, http.StatusBadRequest, "invalid_request", `want {"down": true|false}`)
		return
	}
	s.SetDown(*b.Down)
	writeJSON(w, http.StatusOK, map[string]bool{"down": *b.Down})
}

func (s *Server) reject(w http.ResponseWriter, status int, code, msg string) {
	s.count(func(st *Stats) { st.Rejected++ })
	writeError(w, status, code, msg)
}

func (s *Server) count(f func(*Stats)) {
	s.mu.Lock()
	f(&s.stats)
	s.mu.Unlock()
}

// attempt numbers the requests for one operation and key, starting at 1.
func (s *Server) attempt(op, key string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attempts[op+"\x00"+key]++
	return s.attempts[op+"\x00"+key]
}

// chance returns a number in [0, 1) derived from the seed, a purpose, the key and n.
func (s *Server) chance(purpose, key string, n uint64) float64 {
	h := fnv.New64a()
	var buf [8]byte
	binary.LittleEndian.PutUint64(buf[:], uint64(s.cfg.Seed))
	h.Write(buf[:])
	h.Write([]byte(purpose))
	h.Write([]byte{0})
	h.Write([]byte(key))
	binary.LittleEndian.PutUint64(buf[:], n)
	h.Write(buf[:])
	return float64(mix(h.Sum64())>>11) / (1 << 53)
}

func (s *Server) id(prefix string, seq uint64) string {
	return fmt.Sprintf("%s_%012x%06d", prefix, mix(uint64(s.cfg.Seed)^seq)&0xffffffffffff, seq)
}

// mix is the splitmix64 finalizer: it spreads the bits of x evenly.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func validCharge(key string, b chargeBody) string {
	switch {
	case key == "" || len(key) > 255:
		return "Idempotency-Key: want 1..255 characters"
	case len(b.OrderID) > 255:
		return "order_id: want at most 255 characters"
	case !validToken(b.Token):
		return "token: want tok_ followed by letters, digits, _ or -, 8..256 characters"
	case !validMethod(b.Method):
		return "method: want card, paypal, sepa_debit, apple_pay or google_pay"
	case b.AmountMinor <= 0:
		return "amount_minor: want a positive integer"
	case !validCurrency(b.Currency):
		return "currency: want an ISO 4217 code such as EUR"
	}
	return ""
}

func validToken(t string) bool {
	if len(t) < 8 || len(t) > 256 || !strings.HasPrefix(t, "tok_") {
		return false
	}
	for _, c := range []byte(t[4:]) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
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

// decode reads a JSON body strictly; it returns a message when the body is unacceptable.
func decode(w http.ResponseWriter, r *http.Request, v any) string {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return "body: " + err.Error()
	}
	if dec.More() {
		return "body: want one JSON object"
	}
	return ""
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	type detail struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	writeJSON(w, status, map[string]detail{"error": {Code: code, Message: msg}})
}
