package api_test

import (
	"os"
	"strings"
	"testing"

	"github.com/orderpipe/orderpipe/internal/api"
	"github.com/orderpipe/orderpipe/internal/config"
	"github.com/orderpipe/orderpipe/internal/orderctl"
)

// Docs move with code: every variable the api and orderctl read is documented in the README's
// configuration table, with its default.
func TestReadmeDocumentsEveryVariable(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []any{&api.Config{}, &orderctl.Config{}} {
		settings, err := config.Settings(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range settings {
			row := "| `" + s.Name + "` |"
			i := strings.Index(string(readme), row)
			if i < 0 {
				t.Errorf("README configuration table has no row for %s", s.Name)
				continue
			}
			line := string(readme[i:])
			line = line[:strings.IndexByte(line, '\n')]
			def := "`" + s.Default + "`"
			if s.Default == "" {
				def = "empty"
			}
			if !strings.Contains(line, def) {
				t.Errorf("README row for %s does not show its default %s: %s", s.Name, def, line)
			}
		}
	}
}
