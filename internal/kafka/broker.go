package kafka

import (
	"context"
	"fmt"
	"io"

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
}

// StartBroker starts the broker. Topics are not auto-created: provisioning creates them.
func StartBroker(cfg BrokerConfig, logw io.Writer) (*Broker, error) {
	opts := []kfake.Opt{
		kfake.Ports(cfg.Ports...),
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
	return &Broker{cluster: c}, nil
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
