package orderworker_test

import (
	"os"
	"testing"

	"github.com/orderpipe/orderpipe/internal/config"
	"github.com/orderpipe/orderpipe/internal/orderworker"
)

// Docs move with code: every variable order-worker reads has a row with its default in README.
func TestReadmeDocumentsEveryVariable(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	problems, err := config.Undocumented(string(readme), &orderworker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("README configuration: %s", p)
	}
}
