package kafka

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/twmb/franz-go/pkg/kfake"
)

// BrokerConfig configures the standalone development broker.
type BrokerConfig struct {
	Ports   []int  // one per broker node; the first is the bootstrap address
	DataDir string // topics, records and committed offsets survive a restart when set
	Sync    bool   // fsync every write (slower, survives a machine crash)
}

// Broker is a Kafka-protocol broker (franz-go's kfake) listening on loopback. It is what
// `make run` uses on machines without a Kafka server; production uses a real cluster.
type Broker struct {
	cluster *kfake.Cluster
	conns   *connTracker
}

// StartBroker starts the broker. Topics are not auto-created: provisioning creates them.
func StartBroker(cfg BrokerConfig, logw io.Writer) (*Broker, error) {
	conns := &connTracker{byAddr: map[string]map[*trackedConn]struct{}{}}
	opts := []kfake.Opt{
		kfake.Ports(cfg.Ports...),
		kfake.ListenFn(conns.listen),
		kfake.WithLogger(kfake.BasicLogger(logw, kfake.LogLevelWarn)),
	}
	if cfg.DataDir != "" {
		opts = append(opts, kfake.DataDir(cfg.DataDir))
	}
	if cfg.Sync {
		opts = append(opts, kfake.SyncWrites())
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start broker on ports %v: %w", cfg.Ports, err)
	}
	return &Broker{cluster: c, conns: conns}, nil
}

// Addrs are the broker's listen addresses (host:port on 127.0.0.1).
func (b *Broker) Addrs() []string { return b.cluster.ListenAddrs() }

// Cluster exposes kfake's control hooks (faults, leader moves) for tests and chaos runs.
func (b *Broker) Cluster() *kfake.Cluster { return b.cluster }

// Run blocks until ctx ends, then closes the broker, flushing its data directory.
func (b *Broker) Run(ctx context.Context) error {
	<-ctx.Done()
	b.cluster.Close()
	return nil
}

// connTracker remembers the connections each of the broker's listeners accepted, so removing a
// node can close them. kfake's RemoveNode closes only the node's listener: connections made before
// stay open, served by the removed node, which answers NOT_LEADER_FOR_PARTITION for everything.
// When the node is added back on its port, clients keep using that old connection for it and
// never reach the new one. A real broker that goes away takes its connections with it.
type connTracker struct {
	mu     sync.Mutex
	byAddr map[string]map[*trackedConn]struct{} // by listen address
}

func (t *connTracker) listen(network, addr string) (net.Listener, error) {
	ln, err := net.Listen(network, addr)
	if err != nil {
		return nil, err
	}
	return &trackedListener{Listener: ln, t: t, addr: ln.Addr().String()}, nil
}

// closeAll closes every open connection accepted on addr and returns how many it closed.
func (t *connTracker) closeAll(addr string) int {
	t.mu.Lock()
	conns := t.byAddr[addr]
	delete(t.byAddr, addr)
	t.mu.Unlock()
	for c := range conns {
		_ = c.Conn.Close()
	}
	return len(conns)
}

type trackedListener struct {
	net.Listener
	t    *connTracker
	addr string
}

func (l *trackedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, t: l.t, addr: l.addr}
	l.t.mu.Lock()
	if l.t.byAddr[l.addr] == nil {
		l.t.byAddr[l.addr] = map[*trackedConn]struct{}{}
	}
	l.t.byAddr[l.addr][tc] = struct{}{}
	l.t.mu.Unlock()
	return tc, nil
}

type trackedConn struct {
	net.Conn
	t    *connTracker
	addr string
}

func (c *trackedConn) Close() error {
	c.t.mu.Lock()
	delete(c.t.byAddr[c.addr], c)
	c.t.mu.Unlock()
	return c.Conn.Close()
}
