package httpapi

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// docs/errors.md lists every problem type the server can send: each slug this package passes to
// newProblem, invalidFields or the webhook's unauthorized, or returns from slugForStatus, has a
// row, and every row is a type the server sends.
func TestErrorsDocListsEveryProblemType(t *testing.T) {
	t.Parallel()
	args := map[string]int{"newProblem": 1, "invalidFields": 1, "unauthorized": 0}
	sent := map[string]string{}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		literal := func(e ast.Expr) {
			if lit, ok := e.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				s, _ := strconv.Unquote(lit.Value)
				sent[s] = fset.Position(lit.Pos()).String()
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				if id, ok := n.Fun.(*ast.Ident); ok {
					if i, ok := args[id.Name]; ok && i < len(n.Args) {
						literal(n.Args[i])
					}
				}
			case *ast.FuncDecl:
				if n.Name.Name == "slugForStatus" {
					ast.Inspect(n.Body, func(m ast.Node) bool {
						if r, ok := m.(*ast.ReturnStmt); ok && len(r.Results) == 1 {
							literal(r.Results[0])
						}
						return true
					})
				}
			}
			return true
		})
	}
	delete(sent, "http-") // the prefix of the fallback for statuses with no slug of their own
	doc, err := os.ReadFile("../../docs/errors.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z0-9-]+)` \\|").FindAllStringSubmatch(string(doc), -1) {
		rows[m[1]] = true
	}
	if len(sent) < 10 || len(rows) < 10 {
		t.Fatalf("found %d types in the code and %d rows in docs/errors.md; the scan is broken", len(sent), len(rows))
	}
	for slug, at := range sent {
		if !rows[slug] {
			t.Errorf("problem type %q (sent at %s) has no row in docs/errors.md", slug, at)
		}
	}
	for slug := range rows {
		if _, ok := sent[slug]; !ok {
			t.Errorf("docs/errors.md lists %q, which the server never sends", slug)
		}
	}
}
