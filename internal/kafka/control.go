package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The standalone broker's control endpoint exposes kfake's fault hooks over a small HTTP API, so
// a chaos run (internal/e2e) can break the broker it started from another process. It listens on
// loopback only and is off unless `orderctl broker --control-addr` is given.
//
//	GET    /v1/nodes                  the broker nodes: [{"node":0,"addr":"127.0.0.1:40001"}, ...]
//	POST   /v1/nodes                  {"node":-1,"port":0}: add a node (-1: next id; 0: any port)
//	DELETE /v1/nodes/{id}             remove a node: its partitions move to the others and its
//	                                   clients' connections are closed
//	POST   /v1/leaders/shuffle        a leader election for every partition (leaders move)
//	POST   /v1/leaders/move           {"topic":"orders.placed","partition":0,"node":1}
//	POST   /v1/faults                 {"kind":"produce-error|fetch-error|latency","for":"5s",
//	                                   "topic":"","error":"NOT_LEADER_FOR_PARTITION","latency":"200ms"}
//	GET    /v1/faults                 the faults active now, with their hits
//	GET    /v1/faults/{id}            one fault, also after it ended (its final hits)
//
// A fault ends by itself after "for" (at most ten minutes). produce-error answers every produce
// (of "topic", or every topic) with the error (default NOT_LEADER_FOR_PARTITION, retriable);
// fetch-error does the same for fetches (default NOT_LEADER_FOR_PARTITION); latency delays every
// produce and fetch by "latency" (default 200ms) without blocking other connections.

// ControlFault is the body of POST /v1/faults.
type ControlFault struct {
	Kind    string `json:"kind"`
	For     string `json:"for"`
	Topic   string `json:"topic,omitempty"`
	Error   string `json:"error,omitempty"`
	Latency string `json:"latency,omitempty"`
}

// ControlNode is one broker node.
type ControlNode struct {
	Node int32  `json:"node"`
	Addr string `json:"addr"`
}

type installedFault struct {
	ID     int       `json:"id"`
	Kind   string    `json:"kind"`
	Topic  string    `json:"topic,omitempty"`
	Until  time.Time `json:"until"`
	Hits   int64     `json:"hits"`
	Active bool      `json:"active"`
}

type control struct {
	b      *Broker
	mu     sync.Mutex
	nodes  map[int32]string
	faults map[int]*activeFault
	ended  map[int]installedFault // kept so the hits of a fault can be read after it ended
	nextID int
}

type activeFault struct {
	installedFault
	handle *kfake.FaultHandle
	hits   *atomic.Int64
	timer  *time.Timer
}

const maxFaultFor = 10 * time.Minute

// ServeControl serves the control endpoint on addr until ctx ends. addr must be a loopback
// address. ready receives the address it listens on.
func (b *Broker) ServeControl(ctx context.Context, addr string, ready func(string)) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("control address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("control address %q: only a loopback address is allowed", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("control listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: b.ControlHandler(), ReadHeaderTimeout: 5 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	if ready != nil {
		ready(ln.Addr().String())
	}
	select {
	case err := <-done:
		return fmt.Errorf("control serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	return nil
}

// ControlHandler is the control endpoint's HTTP handler.
func (b *Broker) ControlHandler() http.Handler {
	c := &control{b: b, nodes: map[int32]string{}, faults: map[int]*activeFault{}, ended: map[int]installedFault{}}
	for i, a := range b.cluster.ListenAddrs() { // kfake numbers its first nodes 0..n-1
		c.nodes[int32(i)] = a
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/nodes", c.listNodes)
	mux.HandleFunc("POST /v1/nodes", c.addNode)
	mux.HandleFunc("DELETE /v1/nodes/{id}", c.removeNode)
	mux.HandleFunc("POST /v1/leaders/shuffle", func(w http.ResponseWriter, _ *http.Request) {
		b.cluster.ShufflePartitionLeaders()
		writeControl(w, http.StatusOK, map[string]string{"result": "leaders shuffled"})
	})
	mux.HandleFunc("POST /v1/leaders/move", c.moveLeader)
	mux.HandleFunc("POST /v1/faults", c.addFault)
	mux.HandleFunc("GET /v1/faults", c.listFaults)
	mux.HandleFunc("GET /v1/faults/{id}", c.getFault)
	return mux
}

func (c *control) listNodes(w http.ResponseWriter, _ *http.Request) {
	c.mu.Lock()
	out := make([]ControlNode, 0, len(c.nodes))
	for n, a := range c.nodes {
		out = append(out, ControlNode{Node: n, Addr: a})
	}
	c.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	writeControl(w, http.StatusOK, out)
}

func (c *control) addNode(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Node *int32 `json:"node"`
		Port int    `json:"port"`
	}
	if !decodeControl(w, r, &body) {
		return
	}
	node := int32(-1)
	if body.Node != nil {
		node = *body.Node
	}
	id, port, err := c.b.cluster.AddNode(node, body.Port)
	if err != nil {
		writeControl(w, http.StatusConflict, map[string]string{"error": err.Error()})
		return
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	c.mu.Lock()
	c.nodes[id] = addr
	c.mu.Unlock()
	writeControl(w, http.StatusOK, ControlNode{Node: id, Addr: addr})
}

func (c *control) removeNode(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 32)
	if err != nil {
		writeControl(w, http.StatusBadRequest, map[string]string{"error": "node id: " + err.Error()})
		return
	}
	if err := c.b.cluster.RemoveNode(int32(id)); err != nil {
		writeControl(w, http.StatusConflict, map[string]string{"error": err.Error()})
		return
	}
	c.mu.Lock()
	addr := c.nodes[int32(id)]
	delete(c.nodes, int32(id))
	c.mu.Unlock()
	// The removed node's clients lose their connections, as with a broker that went away
	// (connTracker).
	c.b.conns.closeAll(addr)
	writeControl(w, http.StatusOK, ControlNode{Node: int32(id), Addr: addr})
}

func (c *control) moveLeader(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Topic     string `json:"topic"`
		Partition int32  `json:"partition"`
		Node      int32  `json:"node"`
	}
	if !decodeControl(w, r, &body) {
		return
	}
	if err := c.b.cluster.MoveTopicPartition(body.Topic, body.Partition, body.Node); err != nil {
		writeControl(w, http.StatusConflict, map[string]string{"error": err.Error()})
		return
	}
	writeControl(w, http.StatusOK, body)
}

func (c *control) addFault(w http.ResponseWriter, r *http.Request) {
	var f ControlFault
	if !decodeControl(w, r, &f) {
		return
	}
	d, err := time.ParseDuration(f.For)
	if err != nil || d <= 0 || d > maxFaultFor {
		writeControl(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("for: want a duration in (0, %s], got %q", maxFaultFor, f.For)})
		return
	}
	af := &activeFault{installedFault: installedFault{Kind: f.Kind, Topic: f.Topic, Until: time.Now().Add(d)}, hits: &atomic.Int64{}}
	switch f.Kind {
	case "produce-error", "fetch-error":
		code := kerr.NotLeaderForPartition
		if f.Error != "" {
			code = kerr.TypedErrorForCode(errorCodeByName(f.Error))
			if code == nil {
				writeControl(w, http.StatusBadRequest, map[string]string{"error": "unknown Kafka error name " + f.Error})
				return
			}
		}
		key := kmsg.Produce
		if f.Kind == "fetch-error" {
			key = kmsg.Fetch
		}
		af.handle = c.b.cluster.Fault(kfake.Fault{Keys: []kmsg.Key{key}, Topic: f.Topic, Err: code, Count: -1})
	case "latency":
		lat := 200 * time.Millisecond
		if f.Latency != "" {
			if lat, err = time.ParseDuration(f.Latency); err != nil || lat <= 0 || lat > time.Minute {
				writeControl(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("latency: want a duration in (0, 1m], got %q", f.Latency)})
				return
			}
		}
		until := af.Until
		hits := af.hits
		delay := func(kmsg.Request) (kmsg.Response, error, bool) {
			if time.Now().After(until) {
				c.b.cluster.DropControl()
				return nil, nil, false
			}
			hits.Add(1)
			c.b.cluster.SleepControl(func() { time.Sleep(lat) })
			return nil, nil, false
		}
		c.b.cluster.ControlKey(int16(kmsg.Produce), delay)
		c.b.cluster.ControlKey(int16(kmsg.Fetch), delay)
	default:
		writeControl(w, http.StatusBadRequest, map[string]string{"error": "kind: want produce-error, fetch-error or latency, got " + strconv.Quote(f.Kind)})
		return
	}
	c.mu.Lock()
	c.nextID++
	af.ID = c.nextID
	c.faults[af.ID] = af
	c.mu.Unlock()
	af.timer = time.AfterFunc(d, func() {
		if af.handle != nil {
			af.handle.Remove()
		}
		c.mu.Lock()
		delete(c.faults, af.ID)
		last := af.snapshot()
		last.Active = false
		c.ended[af.ID] = last
		c.mu.Unlock()
	})
	writeControl(w, http.StatusOK, af.snapshot())
}

func (c *control) listFaults(w http.ResponseWriter, _ *http.Request) {
	c.mu.Lock()
	out := make([]installedFault, 0, len(c.faults))
	for _, f := range c.faults {
		out = append(out, f.snapshot())
	}
	c.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	writeControl(w, http.StatusOK, out)
}

func (c *control) getFault(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.Atoi(r.PathValue("id"))
	if err != nil {
		writeControl(w, http.StatusBadRequest, map[string]string{"error": "fault id: " + err.Error()})
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if f, ok := c.faults[id]; ok {
		writeControl(w, http.StatusOK, f.snapshot())
		return
	}
	if f, ok := c.ended[id]; ok {
		writeControl(w, http.StatusOK, f)
		return
	}
	writeControl(w, http.StatusNotFound, map[string]string{"error": "no fault " + strconv.Itoa(id)})
}

func (f *activeFault) snapshot() installedFault {
	s := f.installedFault
	s.Active = true
	if f.handle != nil {
		s.Hits = int64(f.handle.Hits())
	} else {
		s.Hits = f.hits.Load()
	}
	return s
}

// errorCodeByName finds a Kafka error code by its protocol name (NOT_LEADER_FOR_PARTITION).
func errorCodeByName(name string) int16 {
	for code := int16(-1); code < 200; code++ {
		if e := kerr.ErrorForCode(code); e != nil {
			var ke *kerr.Error
			if errors.As(e, &ke) && ke.Message == name {
				return code
			}
		}
	}
	return 0
}

func decodeControl(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeControl(w, http.StatusBadRequest, map[string]string{"error": "body: " + err.Error()})
		return false
	}
	return true
}

func writeControl(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
