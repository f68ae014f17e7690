package orderctl

import (
	"context"
	"fmt"
	"io"

	"github.com/orderpipe/orderpipe/internal/kafka"
)

// runBrokerWithControl runs the broker and its fault-injection control endpoint (see
// internal/kafka/control.go) until ctx ends or the endpoint fails.
func runBrokerWithControl(ctx context.Context, b *kafka.Broker, addr string, stdout io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		errc <- b.ServeControl(ctx, addr, func(a string) {
			fmt.Fprintf(stdout, "broker control on http://%s\n", a)
		})
		cancel()
	}()
	err := b.Run(ctx)
	if cerr := <-errc; cerr != nil && err == nil {
		err = cerr
	}
	return err
}
