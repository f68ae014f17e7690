package kafka

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func controlCall(t *testing.T, method, url, body string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, url, b, err)
		}
	}
	return resp.StatusCode
}

// TestControlEndpoint drives the broker's fault hooks over HTTP: a produce fault answers produce
// requests with an error until it ends by itself (the idempotent producer retries through it),
// nodes are removed and added, leaders move, and bad requests are refused with 400.
func TestControlEndpoint(t *testing.T) {
	b, err := StartBroker(BrokerConfig{Ports: []int{0, 0}}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.cluster.Close() })
	srv := httptest.NewServer(b.ControlHandler())
	t.Cleanup(srv.Close)

	var nodes []ControlNode
	if code := controlCall(t, http.MethodGet, srv.URL+"/v1/nodes", "", &nodes); code != http.StatusOK || len(nodes) != 2 {
		t.Fatalf("GET /v1/nodes: %d %v, want 2 nodes", code, nodes)
	}

	cl, err := NewClient(ClientConfig{Brokers: b.Addrs(), ClientID: "control-test"})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if _, err := EnsureTopics(ctx, kadm.NewClient(cl), []TopicSpec{{Name: "t", Partitions: 1, Replication: 1}}, true); err != nil {
		t.Fatal(err)
	}
	var fault struct {
		ID   int    `json:"id"`
		Kind string `json:"kind"`
	}
	if code := controlCall(t, http.MethodPost, srv.URL+"/v1/faults", `{"kind":"produce-error","for":"1s"}`, &fault); code != http.StatusOK || fault.Kind != "produce-error" {
		t.Fatalf("POST /v1/faults: %d %+v", code, fault)
	}
	var list []struct {
		Kind string `json:"kind"`
		Hits int64  `json:"hits"`
	}
	// The producer retries the retriable error until the fault ends, then its record lands.
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "t", Value: []byte("through the fault")}).FirstErr(); err != nil {
		t.Fatalf("produce through a 1s produce fault: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		controlCall(t, http.MethodGet, srv.URL+"/v1/faults", "", &list)
		if len(list) == 0 {
			break
		}
		if list[0].Hits == 0 {
			t.Errorf("the fault answered no produce request: %+v", list)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the fault did not end by itself: %+v", list)
		}
		time.Sleep(100 * time.Millisecond)
	}

	var removed ControlNode
	if code := controlCall(t, http.MethodDelete, srv.URL+"/v1/nodes/1", "", &removed); code != http.StatusOK || removed.Node != 1 {
		t.Fatalf("DELETE /v1/nodes/1: %d %+v", code, removed)
	}
	if code := controlCall(t, http.MethodDelete, srv.URL+"/v1/nodes/0", "", nil); code != http.StatusConflict {
		t.Fatalf("removing the last node: got %d, want 409", code)
	}
	var added ControlNode
	if code := controlCall(t, http.MethodPost, srv.URL+"/v1/nodes", `{"node":1,"port":0}`, &added); code != http.StatusOK || added.Node != 1 || added.Addr == "" {
		t.Fatalf("POST /v1/nodes: %d %+v", code, added)
	}
	controlCall(t, http.MethodGet, srv.URL+"/v1/nodes", "", &nodes)
	if len(nodes) != 2 {
		t.Fatalf("nodes after remove and add: %v", nodes)
	}
	if code := controlCall(t, http.MethodPost, srv.URL+"/v1/leaders/shuffle", "", nil); code != http.StatusOK {
		t.Fatalf("POST /v1/leaders/shuffle: %d", code)
	}

	for _, bad := range []string{
		`{"kind":"meteor","for":"1s"}`,
		`{"kind":"latency","for":"forever"}`,
		`{"kind":"produce-error","for":"1s","error":"NO_SUCH_ERROR"}`,
		`{"kind":"latency","for":"1s","unknown":1}`,
	} {
		if code := controlCall(t, http.MethodPost, srv.URL+"/v1/faults", bad, nil); code != http.StatusBadRequest {
			t.Errorf("POST /v1/faults %s: got %d, want 400", bad, code)
		}
	}
}

// TestServeControlRefusesNonLoopback keeps the fault endpoint off the network.
func TestServeControlRefusesNonLoopback(t *testing.T) {
	b, err := StartBroker(BrokerConfig{Ports: []int{0}}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer b.cluster.Close()
	err = b.ServeControl(t.Context(), "0.0.0.0:0", nil)
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("ServeControl on 0.0.0.0: got %v, want a loopback error", err)
	}
}

// TestRemovedNodeDropsItsConnections: a node removed and added back on its port serves its
// partitions to clients that were connected before the removal. A real broker that goes away
// takes its connections with it; kfake's removal only closes the listener, so a client kept
// talking to the removed node over its old connection and got NOT_LEADER_FOR_PARTITION for
// every partition the node leads again, until the connection died (chaos-broker's stalls).
func TestRemovedNodeDropsItsConnections(t *testing.T) {
	b, err := StartBroker(BrokerConfig{Ports: []int{0, 0, 0}}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.cluster.Close() })
	srv := httptest.NewServer(b.ControlHandler())
	t.Cleanup(srv.Close)
	cl, err := NewClient(ClientConfig{Brokers: b.Addrs(), ClientID: "remove-test"}, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	const partitions = 12
	if _, err := EnsureTopics(ctx, kadm.NewClient(cl), []TopicSpec{{Name: "t", Partitions: partitions, Replication: 1}}, true); err != nil {
		t.Fatal(err)
	}
	produceAll := func(what string) {
		t.Helper()
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		rs := make([]*kgo.Record, partitions)
		for p := range rs {
			rs[p] = &kgo.Record{Topic: "t", Partition: int32(p), Value: []byte(what)}
		}
		for _, r := range cl.ProduceSync(pctx, rs...) {
			if r.Err != nil {
				t.Fatalf("%s: produce to partition %d: %v", what, r.Record.Partition, r.Err)
			}
		}
	}
	produceAll("connections to every node") // the client now holds a connection to node 1

	var removed, back ControlNode
	if code := controlCall(t, http.MethodDelete, srv.URL+"/v1/nodes/1", "", &removed); code != http.StatusOK {
		t.Fatalf("DELETE /v1/nodes/1: %d", code)
	}
	_, port, _ := net.SplitHostPort(removed.Addr)
	if code := controlCall(t, http.MethodPost, srv.URL+"/v1/nodes", `{"node":1,"port":`+port+`}`, &back); code != http.StatusOK || back.Addr != removed.Addr {
		t.Fatalf("POST /v1/nodes (node 1 back on %s): %d %+v", port, code, back)
	}
	// Until the shuffle the re-added node may lead nothing; afterwards it leads some partitions
	// with high probability, and the loop makes it certain.
	for range 5 {
		controlCall(t, http.MethodPost, srv.URL+"/v1/leaders/shuffle", "", nil)
		produceAll("after node 1 came back")
	}
}
