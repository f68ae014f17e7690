package orderworker_test

import (
	"os"
	"strings"
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
	settings, err := config.Settings(&orderworker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range settings {
		row := "| `" + s.Name + "` |"
		i := strings.Index(string(readme), row)
		if i < 0 {
			t.Errorf("README has no configuration row for %s", s.Name)
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
