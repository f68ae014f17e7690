package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderpipe/orderpipe/internal/kafka"
	"github.com/orderpipe/orderpipe/internal/paysim"
	"github.com/orderpipe/orderpipe/internal/topology"
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
	// Evidence is what was observed to show the fault happened and hit something: the group's
	// uncommitted records at a kill, process ids before and after, the server's identity or
	// start time before and after a restart, the requests a broker fault hit, the leaders that
	// moved, the simulator's health during an outage.
	Evidence []string `json:"evidence"`
	// Confirmed is whether the evidence shows the fault took effect as intended (a kill of a
	// consumer hit it with work in hand); a run with an unconfirmed step fails (Problems).
	Confirmed bool `json:"confirmed"`
}

// evidenceLog collects a step's evidence and whether it confirms the fault.
type evidenceLog struct {
	lines []string
	doubt []string // why not confirmed
}

func (l *evidenceLog) add(format string, a ...any) {
	l.lines = append(l.lines, fmt.Sprintf(format, a...))
}

// check records a condition the fault must meet; any false one leaves the step unconfirmed.
func (l *evidenceLog) check(ok bool, format string, a ...any) {
	if !ok {
		l.doubt = append(l.doubt, fmt.Sprintf(format, a...))
	}
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
	var ev evidenceLog
	detail, err := e.do(ctx, s, &ev)
	rec.Detail, rec.Took = detail, time.Since(start)
	if err != nil {
		rec.Error = err.Error()
	}
	rec.Evidence = ev.lines
	if rec.Evidence == nil {
		rec.Evidence = []string{}
	}
	rec.Confirmed = err == nil && len(ev.doubt) == 0 && len(ev.lines) > 0
	for _, d := range ev.doubt {
		rec.Evidence = append(rec.Evidence, "NOT CONFIRMED: "+d)
	}
	return rec
}

// consumerGroup is the consumer group a kill target's processes belong to ("" for none).
var consumerGroup = map[string]string{"order-worker": topology.GroupOrderWorker, "inventory-sync": topology.GroupInventorySync, "notifier": topology.GroupNotifier}

// workInHand waits (at most e.opts.KillWait) until group has records it has not committed: a
// process of it killed then dies with work in hand. It returns the lag seen, 0 if none came.
func (e *Env) workInHand(ctx context.Context, group string) (int64, error) {
	m, err := newLagMeter(e.Brokers)
	if err != nil {
		return 0, err
	}
	defer m.close()
	deadline := time.Now().Add(e.opts.KillWait)
	for {
		lag, err := m.measure(ctx)
		if err != nil {
			return 0, err
		}
		if lag[group] > 0 || !time.Now().Before(deadline) || ctx.Err() != nil {
			return lag[group], nil
		}
		sleep(ctx, 5*time.Millisecond)
	}
}

func (e *Env) do(ctx context.Context, s Step, ev *evidenceLog) (string, error) {
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
		if group := consumerGroup[s.Target]; group != "" {
			lag, err := e.workInHand(ctx, group)
			if err != nil {
				ev.check(false, "the lag of %s could not be read before the kill: %v", group, err)
			} else {
				ev.add("%s had %d records not yet committed when it was signalled (work in hand)", group, lag)
				ev.check(lag > 0, "%s had no uncommitted record within %s before the signal: the %s hit an idle process", group, e.opts.KillWait, s.Action)
			}
		}
		pids := map[string]int{}
		for _, p := range procs {
			pids[p.Name()] = p.PID()
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
		for _, p := range procs {
			ev.check(!p.Running(), "%s (pid %d) still runs after the signal", p.Name(), pids[p.Name()])
		}
		sleep(ctx, down)
		for _, p := range procs {
			if err := e.Sup.Restart(ctx, p); err != nil {
				return detail, err
			}
			detail += fmt.Sprintf("restarted %s (pid %d) after %s; ", p.Name(), p.PID(), down)
			ev.add("%s: pid %d ended, pid %d ready", p.Name(), pids[p.Name()], p.PID())
			ev.check(p.PID() != pids[p.Name()] && p.Running(), "%s: pid %d before, %d after (running %v)", p.Name(), pids[p.Name()], p.PID(), p.Running())
		}
		return detail, nil
	case "scale":
		before := len(e.Sup.Group("order-worker"))
		err := e.ScaleWorkers(ctx, s.Replicas)
		after := e.Sup.Group("order-worker")
		running := 0
		for _, p := range after {
			if p.Running() {
				running++
			}
		}
		ev.add("order-worker replicas running: %d before, %d after", before, running)
		ev.check(running == s.Replicas && len(after) == s.Replicas, "%d order-worker replicas running after scaling to %d", running, s.Replicas)
		return fmt.Sprintf("order-worker replicas %d -> %d", before, len(after)), err
	case "redis-restart-empty":
		p, _ := e.Sup.Get("redis")
		pid := p.PID()
		runBefore, keysBefore := e.redisIdentity(ctx)
		if err := e.Sup.Kill(p); err != nil {
			return "", err
		}
		sleep(ctx, s.For)
		if err := e.Sup.Restart(ctx, p); err != nil {
			return "", err
		}
		runAfter, keysAfter := e.redisIdentity(ctx)
		ev.add("redis run_id %s with %d keys before, run_id %s with %d keys right after the restart", runBefore, keysBefore, runAfter, keysAfter)
		ev.check(runBefore != "" && runAfter != "" && runBefore != runAfter, "redis run_id unchanged or unreadable (%q, %q): the server was not restarted", runBefore, runAfter)
		ev.check(keysAfter < keysBefore || keysBefore == 0, "redis had %d keys after the restart, %d before: it did not come back empty", keysAfter, keysBefore)
		// Nothing is repaired by hand: the services see an empty Redis (every SKU lost), answer
		// 503 until inventory-sync's periodic reconciliation (RECONCILE_INTERVAL) rebuilds it from
		// Postgres and the order topics (docs/stock.md).
		return fmt.Sprintf("SIGKILL redis-server (pid %d, no persistence), started empty (pid %d)", pid, p.PID()), nil
	case "postgres-restart":
		p, _ := e.Sup.Get("postgres")
		pid := p.PID()
		startedBefore := e.postgresStart(ctx)
		// SIGQUIT is Postgres's immediate shutdown: no checkpoint, every backend dies, crash
		// recovery at the next start, like a crash of the server.
		if err := e.Sup.Signal(p, syscall.SIGQUIT, 30*time.Second); err != nil {
			return "", err
		}
		sleep(ctx, s.For)
		if err := e.Sup.Restart(ctx, p); err != nil {
			return "", err
		}
		startedAfter := e.postgresStart(ctx)
		ev.add("postmaster started at %s before, %s after (pid %d, then %d)", fmtTime(startedBefore), fmtTime(startedAfter), pid, p.PID())
		ev.check(!startedBefore.IsZero() && startedAfter.After(startedBefore), "pg_postmaster_start_time did not move (%s, %s): the server was not restarted", fmtTime(startedBefore), fmtTime(startedAfter))
		return fmt.Sprintf("postgres immediate shutdown (SIGQUIT to pid %d), down %s, restarted with crash recovery (pid %d)", pid, s.For, p.PID()), nil
	case "payment-outage":
		before, _ := e.paysimStats(ctx)
		if err := e.paymentOutage(ctx, true); err != nil {
			return "", err
		}
		downCode := e.paysimHealth(ctx)
		sleep(ctx, s.For)
		during, _ := e.paysimStats(ctx)
		err := e.paymentOutage(context.WithoutCancel(ctx), false)
		upCode := e.paysimHealth(ctx)
		ev.add("paysim /healthz %d during the outage, %d after; %d charge and refund requests answered with a fault during it", downCode, upCode, during.Faults-before.Faults)
		ev.check(downCode == http.StatusServiceUnavailable && upCode == http.StatusOK, "paysim health %d during and %d after the outage, want 503 and 200", downCode, upCode)
		return fmt.Sprintf("paysim down for %s (every charge and refund 503)", s.For), err
	case "broker-fault":
		return e.brokerFault(ctx, s, ev)
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

func (e *Env) brokerFault(ctx context.Context, s Step, ev *evidenceLog) (string, error) {
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
		ev.add("fault %d hit %d requests", f.ID, f.Hits)
		ev.check(f.Hits > 0, "the %s fault hit no request", s.Kind)
		what := "produce requests answered with " + orDefault(s.Args["error"], "NOT_LEADER_FOR_PARTITION")
		switch s.Kind {
		case "fetch-error":
			what = "fetch requests answered with " + orDefault(s.Args["error"], "NOT_LEADER_FOR_PARTITION")
		case "latency":
			what = "produce and fetch requests delayed by " + orDefault(s.Args["latency"], "200ms")
		}
		return fmt.Sprintf("broker %s for %s: %d %s", s.Kind, s.For, f.Hits, what), nil
	case "leader-move":
		before, berr := e.leaders(ctx)
		if err := postJSON(ctx, e.ControlURL+"/v1/leaders/shuffle", struct{}{}, nil); err != nil {
			return "", err
		}
		after, aerr := e.leaders(ctx)
		moved := 0
		for k, l := range after {
			if b, ok := before[k]; ok && b != l {
				moved++
			}
		}
		ev.add("%d of %d partition leaders moved", moved, len(after))
		ev.check(berr == nil && aerr == nil && moved > 0, "no partition leader moved (metadata errors: %v, %v)", berr, aerr)
		return "leader election on every partition (leaders moved)", nil
	case "broker-add":
		var n kafka.ControlNode
		if err := postJSON(ctx, e.ControlURL+"/v1/nodes", map[string]any{}, &n); err != nil {
			return "", err
		}
		nodes, err := e.brokerNodes(ctx)
		ev.add("metadata lists brokers %v", nodes)
		ev.check(err == nil && slices.Contains(nodes, n.Node), "the added node %d is not in the metadata (%v, %v)", n.Node, nodes, err)
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
		gone, gerr := e.brokerNodes(ctx)
		sleep(ctx, s.For)
		_, port, _ := splitPort(removed.Addr)
		var back kafka.ControlNode
		err := postJSON(context.WithoutCancel(ctx), e.ControlURL+"/v1/nodes", map[string]any{"node": node, "port": port}, &back)
		again, aerr := e.brokerNodes(ctx)
		ev.add("metadata lists brokers %v while node %d is removed, %v after it is back", gone, node, again)
		ev.check(gerr == nil && aerr == nil && !slices.Contains(gone, node) && slices.Contains(again, node), "node %d not gone from the metadata during the fault or not back after it (%v, %v; %v, %v)", node, gone, again, gerr, aerr)
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

// redisIdentity is the run's Redis server's run_id (new at every start) and its number of keys;
// "" and -1 when it cannot be read.
func (e *Env) redisIdentity(ctx context.Context) (string, int64) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := e.rdb.Info(ctx, "server").Result()
	if err != nil {
		return "", -1
	}
	var id string
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "run_id:"); ok {
			id = v
		}
	}
	n, err := e.rdb.DBSize(ctx).Result()
	if err != nil {
		return id, -1
	}
	return id, n
}

// postgresStart is the run's postmaster's start time (zero when it cannot be read: the pool
// reconnects after a restart, so a few tries).
func (e *Env) postgresStart(ctx context.Context) time.Time {
	for range 5 {
		var t time.Time
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := e.pool.QueryRow(qctx, `SELECT pg_postmaster_start_time()`).Scan(&t)
		cancel()
		if err == nil {
			return t
		}
		sleep(ctx, 200*time.Millisecond)
	}
	return time.Time{}
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "?"
	}
	return t.UTC().Format("15:04:05.000")
}

// paysimStats reads the simulator's counters.
func (e *Env) paysimStats(ctx context.Context) (paysim.Stats, error) {
	var st paysim.Stats
	err := doJSON(ctx, http.MethodGet, e.PaymentURL+"/v1/stats", nil, &st)
	return st, err
}

// paysimHealth is the status of the simulator's /healthz (503 while an outage lasts), 0 when it
// does not answer.
func (e *Env) paysimHealth(ctx context.Context) int {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.PaymentURL+"/healthz", nil)
	if err != nil {
		return 0
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// admin returns a Kafka admin client on the run's broker and its closer.
func (e *Env) admin() (*kadm.Client, func(), error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.Brokers...), kgo.ClientID("orderpipe-e2e-chaos"), kgo.RetryTimeout(5*time.Second))
	if err != nil {
		return nil, nil, err
	}
	return kadm.NewClient(cl), cl.Close, nil
}

// leaders maps every partition of the run's topics ("topic/partition") to its leader.
func (e *Env) leaders(ctx context.Context) (map[string]int32, error) {
	adm, done, err := e.admin()
	if err != nil {
		return nil, err
	}
	defer done()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	md, err := adm.Metadata(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]int32{}
	for _, t := range md.Topics {
		for _, p := range t.Partitions {
			out[fmt.Sprintf("%s/%d", t.Topic, p.Partition)] = p.Leader
		}
	}
	return out, nil
}

// brokerNodes lists the node ids the cluster's metadata names, sorted.
func (e *Env) brokerNodes(ctx context.Context) ([]int32, error) {
	adm, done, err := e.admin()
	if err != nil {
		return nil, err
	}
	defer done()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	bs, err := adm.ListBrokers(ctx)
	if err != nil {
		return nil, err
	}
	out := bs.NodeIDs()
	slices.Sort(out)
	return out, nil
}
