package httpapi

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// docs/errors.md lists every problem type the server can send, and nothing it cannot: the slugs
// are read from the source (every newProblem, invalidFields and signature problem, and the
// slugs of Echo's own errors) and compared with the table's first column.
func TestErrorsDocListsEveryProblemType(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	slugArg := map[string]int{"newProblem": 1, "invalidFields": 1, "unauthorized": 0}
	inCode := map[string]string{} // slug -> where
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				id, ok := n.Fun.(*ast.Ident)
				if !ok {
					return true
				}
				if i, ok := slugArg[id.Name]; ok && i < len(n.Args) {
					if lit, ok := n.Args[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						s, _ := strconv.Unquote(lit.Value)
						inCode[s] = fset.Position(lit.Pos()).String()
					}
				}
			case *ast.FuncDecl:
				if n.Name.Name != "slugForStatus" {
					return true
				}
				ast.Inspect(n.Body, func(m ast.Node) bool {
					if r, ok := m.(*ast.ReturnStmt); ok && len(r.Results) == 1 {
						if lit, ok := r.Results[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
							s, _ := strconv.Unquote(lit.Value)
							inCode[s] = fset.Position(lit.Pos()).String()
						}
					}
					return true
				})
				return false
			}
			return true
		})
	}
	if len(inCode) < 10 {
		t.Fatalf("found only %d problem slugs in the source: %v; the scan is broken", len(inCode), inCode)
	}
	doc, err := os.ReadFile("../../docs/errors.md")
	if err != nil {
		t.Fatal(err)
	}
	inDoc := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z-]+)` \\|").FindAllStringSubmatch(string(doc), -1) {
		inDoc[m[1]] = true
	}
	var missing, stale []string
	for s, where := range inCode {
		if !inDoc[s] {
			missing = append(missing, s+" ("+where+")")
		}
	}
	for s := range inDoc {
		if _, ok := inCode[s]; !ok {
			stale = append(stale, s)
		}
	}
	slices.Sort(missing)
	slices.Sort(stale)
	if len(missing) > 0 {
		t.Errorf("problem types the server sends that docs/errors.md does not list: %v", missing)
	}
	if len(stale) > 0 {
		t.Errorf("docs/errors.md lists problem types the server never sends: %v", stale)
	}
}
