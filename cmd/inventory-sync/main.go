// Command inventory-sync applies warehouse stock events from inventory.stock to the stock truth in
// Postgres and to Redis available-to-promise (consumer group inventory-sync). It is configured by
// environment variables; -h lists them.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/orderpipe/orderpipe/internal/inventorysync"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := inventorysync.Run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "inventory-sync:", err)
		os.Exit(1)
	}
}
