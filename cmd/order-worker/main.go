// Command order-worker is not built yet: it says so and exits non-zero, so nothing pretends to run.
// See the issue tracker for the work that fills it.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "order-worker: not implemented yet (planned; see README, 'Status'); exiting")
	os.Exit(2)
}
