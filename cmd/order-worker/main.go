// Command order-worker charges, decides and confirms accepted orders (consumer group
// order-worker). It is configured by environment variables; -h lists them.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/orderpipe/orderpipe/internal/orderworker"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := orderworker.Run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "order-worker:", err)
		os.Exit(1)
	}
}
