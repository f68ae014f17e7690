// Package kafka adapts franz-go to orderpipe: it builds clients (idempotent producer, acks=all,
// no topic auto-creation, kprom metrics), provisions topics through kadm with explicit
// partitions, and runs a standalone Kafka-protocol broker (kfake) for local development.
//
// Services are configured by broker addresses only: they cannot tell kfake from a real cluster.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"
)

// ClientConfig is what every orderpipe Kafka client needs.
type ClientConfig struct {
	Brokers  []string
	ClientID string
	// ProduceTimeout bounds how long a record may wait for the broker's acknowledgement
	// (kgo.RecordDeliveryTimeout). Zero keeps franz-go's default (retry until the context ends).
	ProduceTimeout time.Duration
	// Registerer receives franz-go's client metrics (kprom); nil disables them.
	Registerer prometheus.Registerer
}

// NewClient builds a franz-go client with orderpipe's producer guarantees: idempotent writes
// with acks=all (franz-go's defaults, set explicitly so nobody loosens them by accident), no topic
// auto-creation, and metrics. Extra options (consumer groups, for example) are appended.
func NewClient(cfg ClientConfig, extra ...kgo.Opt) (*kgo.Client, error) {
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID(cfg.ClientID),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
		kgo.ProducerBatchCompression(kgo.Lz4Compression(), kgo.NoCompression()),
		kgo.MetadataMinAge(time.Second),
		kgo.RetryTimeout(30 * time.Second),
	}
	if cfg.ProduceTimeout > 0 {
		opts = append(opts, kgo.RecordDeliveryTimeout(cfg.ProduceTimeout))
	}
	if cfg.Registerer != nil {
		m := kprom.NewMetrics("orderpipe_kafka", kprom.Registerer(cfg.Registerer))
		opts = append(opts, kgo.WithHooks(m))
	}
	opts = append(opts, extra...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	return cl, nil
}

// Ping asks the cluster for metadata, proving a broker answers.
func Ping(ctx context.Context, cl *kgo.Client) error {
	if err := cl.Ping(ctx); err != nil {
		return fmt.Errorf("kafka ping: %w", err)
	}
	return nil
}

// Retriable reports whether a produce error is worth retrying later (the broker or the
// network), as opposed to a request the broker will never accept.
func Retriable(err error) bool {
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Retriable
	}
	return true
}

// FetchOffsets is kadm's FetchOffsets that waits out the group coordinator's retriable errors
// for up to 30 s. A real cluster answers COORDINATOR_NOT_AVAILABLE while it creates or loads
// __consumer_offsets (the first group request on a new cluster) and NOT_COORDINATOR while a
// coordinator moves; kadm returns those at once, and kfake never sends them.
func FetchOffsets(ctx context.Context, adm *kadm.Client, group string) (kadm.OffsetResponses, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := adm.FetchOffsets(ctx, group)
		if err == nil || !kerr.IsRetriable(err) || time.Now().After(deadline) {
			return resp, err
		}
		select {
		case <-ctx.Done():
			return resp, err
		case <-time.After(200 * time.Millisecond):
		}
	}
}
