package api_test

import (
	"os"
	"testing"

	"github.com/orderpipe/orderpipe/internal/api"
	"github.com/orderpipe/orderpipe/internal/config"
	"github.com/orderpipe/orderpipe/internal/orderctl"
)

// Docs move with code: every variable the api and orderctl read is documented in the README's
// configuration tables, with its default.
func TestReadmeDocumentsEveryVariable(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []any{&api.Config{}, &orderctl.Config{}} {
		problems, err := config.Undocumented(string(readme), cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("README configuration: %s", p)
		}
	}
}
