package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"github.com/orderpipe/orderpipe/internal/kafka"
)

// Step is one chaos step (the fields of loadgen.ChaosStep this package uses).
type Step struct {
	At, For  time.Duration
	Action   string // kill, stop, scale, broker-fault, redis-restart-empty, postgres-restart, payment-outage
	Target   string // kill/stop: order-worker, inventory-sync, notifier, api, paysim, mailsink
	Kind     string // broker-fault: produce-error, fetch-error, latency, leader-move, broker-remove, broker-add
	Replicas int
	Args     map[string]string
}

func (s Step) String() string {
	out := s.Action
	if s.Target != "" {
		out += " " + s.Target
	}
	if s.Kind != "" {
		out += " " + s.Kind
	}
	if s.Action == "scale" {
		out += fmt.Sprintf(" to %d", s.Replicas)
	}
	if s.For > 0 {
		out += " for " + s.For.String()
	}
	return out
}

// ChaosRecord is what one executed step did, for the report.
type ChaosRecord struct {
	Step   string        `json:"step"`
	Action string        `json:"action"`
	Began  time.Time     `json:"began"`
	At     time.Duration `json:"at_ns"`   // offset of the step in the run
	Took   time.Duration `json:"took_ns"` // until the fault was over and everything was back (ready)
	Detail string        `json:"detail"`  // what exactly was done
	Error  string        `json:"error,omitempty"`
}

// killable are the groups a kill or stop step may target: processes of this run only.
var killable = map[string]bool{"order-worker": true, "inventory-sync": true, "notifier": true, "api": true, "paysim": true, "mailsink": true}

// Validate checks a step before the run starts, so a typo does not surface mid-run.
func (s Step) Validate() error {
	switch s.Action {
	case "kill", "stop":
		if !killable[s.Target] {
			return fmt.Errorf("%s: target %q is not one of order-worker, inventory-sync, notifier, api, paysim, mailsink", s.Action, s.Target)
		}
	case "scale":
		if s.Target != "order-worker" || s.Replicas < 1 || s.Replicas > 8 {
			return fmt.Errorf("scale: want target order-worker and replicas 1..8, got %q %d", s.Target, s.Replicas)
		}
	case "broker-fault":
		switch s.Kind {
		case "produce-error", "fetch-error", "latency", "broker-remove":
			if s.For <= 0 {
				return fmt.Errorf("broker-fault %s: needs a for duration", s.Kind)
			}
		case "leader-move", "broker-add":
		default:
			return fmt.Errorf("broker-fault: unknown kind %q", s.Kind)
		}
	case "redis-restart-empty", "postgres-restart":
	case "payment-outage":
		if s.For <= 0 {
			return fmt.Errorf("payment-outage: needs a for duration")
		}
	default:
		return fmt.Errorf("unknown chaos action %q", s.Action)
	}
	return nil
}

// Do executes one step and returns when its fault is over and the affected processes are back
// and ready. It only ever signals processes of this environment's supervisor.
func (e *Env) Do(ctx context.Context, s Step) ChaosRecord {
	start := time.Now()
	rec := ChaosRecord{Step: s.String(), Action: s.Action, At: s.At, Began: start}
	detail, err := e.do(ctx, s)
	rec.Detail, rec.Took = detail, time.Since(start)
	if err != nil {
		rec.Error = err.Error()
	}
	return rec
}

func (e *Env) do(ctx context.Context, s Step) (string, error) {
	if err := s.Validate(); err != nil {
		return "", err
	}
	down := s.For
	switch s.Action {
	case "kill", "stop":
		if down == 0 {
			down = 2 * time.Second
		}
		procs := e.Sup.Group(s.Target)
		if len(procs) == 0 {
			return "", fmt.Errorf("no running %s", s.Target)
		}
		if s.Args["replica"] == "one" {
			procs = procs[:1]
		}
		detail := ""
		for _, p := range procs {
			pid := p.PID()
			var err error
			if s.Action == "kill" {
				err = e.Sup.Kill(p)
				detail += fmt.Sprintf("SIGKILL %s (pid %d); ", p.Name(), pid)
			} else {
				err = e.Sup.Stop(p)
				detail += fmt.Sprintf("SIGTERM %s (pid %d); ", p.Name(), pid)
			}
			if err != nil {
				return detail, err
			}
		}
		sleep(ctx, down)
		for _, p := range procs {
			if err := e.Sup.Restart(ctx, p); err != nil {
				return detail, err
			}
			detail += fmt.Sprintf("restarted %s (pid %d) after %s; ", p.Name(), p.PID(), down)
		}
		return detail, nil
	case "scale":
		before := len(e.Sup.Group("order-worker"))
		err := e.ScaleWorkers(ctx, s.Replicas)
		return fmt.Sprintf("order-worker replicas %d -> %d", before, len(e.Sup.Group("order-worker"))), err
	case "redis-restart-empty":
		p, _ := e.Sup.Get("redis")
		pid := p.PID()
		if err := e.Sup.Kill(p); err != nil {
			return "", err
		}
		sleep(ctx, s.For)
		if err := e.Sup.Restart(ctx, p); err != nil {
			return "", err
		}
		// Nothing is repaired by hand: the services see an empty Redis (every SKU lost), answer
		// 503 until inventory-sync's periodic reconciliation (RECONCILE_INTERVAL) rebuilds it from
		// Postgres and the order topics (docs/stock.md).
		return fmt.Sprintf("SIGKILL redis-server (pid %d, no persistence), started empty (pid %d)", pid, p.PID()), nil
	case "postgres-restart":
		p, _ := e.Sup.Get("postgres")
		pid := p.PID()
		// SIGQUIT is Postgres's immediate shutdown: no checkpoint, every backend dies, crash
		// recovery at the next start, like a crash of the server.
		if err := e.Sup.Signal(p, syscall.SIGQUIT, 30*time.Second); err != nil {
			return "", err
		}
		sleep(ctx, s.For)
		if err := e.Sup.Restart(ctx, p); err != nil {
			return "", err
		}
		return fmt.Sprintf("postgres immediate shutdown (SIGQUIT to pid %d), down %s, restarted with crash recovery (pid %d)", pid, s.For, p.PID()), nil
	case "payment-outage":
		if err := e.paymentOutage(ctx, true); err != nil {
			return "", err
		}
		sleep(ctx, s.For)
		err := e.paymentOutage(context.WithoutCancel(ctx), false)
		return fmt.Sprintf("paysim down for %s (every charge and refund 503)", s.For), err
	case "broker-fault":
		return e.brokerFault(ctx, s)
	}
	return "", fmt.Errorf("unknown chaos action %q", s.Action)
}

func orDefault(v, d string) string {
	if v == "" {
		return d
	}
	return v
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func (e *Env) paymentOutage(ctx context.Context, down bool) error {
	return postJSON(ctx, e.PaymentURL+"/v1/admin/outage", map[string]bool{"down": down}, nil)
}

func (e *Env) brokerFault(ctx context.Context, s Step) (string, error) {
	switch s.Kind {
	case "produce-error", "fetch-error", "latency":
		body := kafka.ControlFault{Kind: s.Kind, For: s.For.String(), Topic: s.Args["topic"], Error: s.Args["error"], Latency: s.Args["latency"]}
		var f struct {
			ID   int   `json:"id"`
			Hits int64 `json:"hits"`
		}
		if err := postJSON(ctx, e.ControlURL+"/v1/faults", body, &f); err != nil {
			return "", err
		}
		sleep(ctx, s.For+200*time.Millisecond)
		if err := doJSON(context.WithoutCancel(ctx), http.MethodGet, fmt.Sprintf("%s/v1/faults/%d", e.ControlURL, f.ID), nil, &f); err != nil {
			return "", err
		}
		what := "produce requests answered with " + orDefault(s.Args["error"], "NOT_LEADER_FOR_PARTITION")
		switch s.Kind {
		case "fetch-error":
			what = "fetch requests answered with " + orDefault(s.Args["error"], "NOT_LEADER_FOR_PARTITION")
		case "latency":
			what = "produce and fetch requests delayed by " + orDefault(s.Args["latency"], "200ms")
		}
		return fmt.Sprintf("broker %s for %s: %d %s", s.Kind, s.For, f.Hits, what), nil
	case "leader-move":
		if err := postJSON(ctx, e.ControlURL+"/v1/leaders/shuffle", struct{}{}, nil); err != nil {
			return "", err
		}
		return "leader election on every partition (leaders moved)", nil
	case "broker-add":
		var n kafka.ControlNode
		if err := postJSON(ctx, e.ControlURL+"/v1/nodes", map[string]any{}, &n); err != nil {
			return "", err
		}
		return fmt.Sprintf("broker node %d added at %s (partitions reassigned)", n.Node, n.Addr), nil
	case "broker-remove":
		node := int32(1)
		if v := s.Args["node"]; v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				return "", fmt.Errorf("broker-remove node %q: %w", v, err)
			}
			node = int32(n)
		}
		var removed kafka.ControlNode
		if err := doJSON(ctx, http.MethodDelete, fmt.Sprintf("%s/v1/nodes/%d", e.ControlURL, node), nil, &removed); err != nil {
			return "", err
		}
		sleep(ctx, s.For)
		_, port, _ := splitPort(removed.Addr)
		var back kafka.ControlNode
		err := postJSON(context.WithoutCancel(ctx), e.ControlURL+"/v1/nodes", map[string]any{"node": node, "port": port}, &back)
		return fmt.Sprintf("broker node %d (%s) removed for %s, then added back at %s", node, removed.Addr, s.For, back.Addr), err
	}
	return "", fmt.Errorf("unknown broker fault %q", s.Kind)
}

func splitPort(addr string) (string, int, error) {
	p, err := strconv.Atoi(portOf(addr))
	return hostOf(addr), p, err
}

func postJSON(ctx context.Context, url string, in, out any) error {
	return doJSON(ctx, http.MethodPost, url, in, out)
}

func doJSON(ctx context.Context, method, url string, in, out any) error {
	var body bytes.Buffer
	if in != nil {
		if err := json.NewEncoder(&body).Encode(in); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, &body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, bytes.TrimSpace(b.Bytes()))
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	return nil
}
