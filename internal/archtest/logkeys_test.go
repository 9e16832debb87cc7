package archtest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// retiredLogKeys are log attribute keys the tree no longer uses, each with the one key for its
// concept (docs/operations.md, "Logging").
var retiredLogKeys = map[string]string{
	"error":     "err",
	"interface": "iface",
	"ifname":    "iface",
	"dev":       "iface",
	"device":    "iface",
}

// logKey is one attribute key found in a log call.
type logKey struct {
	key, pos string
}

// logKeys finds the attribute keys of the log calls in the Go source under root (test files left
// out): the string-literal keys of slog-style calls (Info, Warn, Error, Debug and their Context forms,
// Log, With: key, value, key, value, … after the message), of slog's attribute constructors
// (slog.String("key", …)), and of []any{key, value, …} attribute lists.
func logKeys(t *testing.T, root string) []logKey {
	t.Helper()
	var out []logKey
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && p != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			return err
		}
		pairs := func(args []ast.Expr, from int) {
			for i := from; i < len(args); i += 2 {
				bl, ok := args[i].(*ast.BasicLit)
				if !ok || bl.Kind != token.STRING {
					return // an attribute or a computed key: the rest is not key, value pairs
				}
				k, _ := strconv.Unquote(bl.Value)
				out = append(out, logKey{k, fset.Position(bl.Pos()).String()})
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CompositeLit:
				if at, ok := n.Type.(*ast.ArrayType); ok {
					if id, ok := at.Elt.(*ast.Ident); ok && id.Name == "any" {
						pairs(n.Elts, 0)
					}
				}
			case *ast.CallExpr:
				sel, ok := n.Fun.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				msg := func(i int) bool { // the message, a string literal, is argument i
					if len(n.Args) <= i {
						return false
					}
					bl, ok := n.Args[i].(*ast.BasicLit)
					return ok && bl.Kind == token.STRING
				}
				switch name := sel.Sel.Name; {
				case slices.Contains([]string{"Info", "Warn", "Error", "Debug"}, name) && msg(0):
					pairs(n.Args, 1)
				case slices.Contains([]string{"InfoContext", "WarnContext", "ErrorContext", "DebugContext"}, name) && msg(1):
					pairs(n.Args, 2)
				case name == "Log" && msg(2):
					pairs(n.Args, 3)
				case name == "With":
					pairs(n.Args, 0)
				default:
					if x, ok := sel.X.(*ast.Ident); ok && x.Name == "slog" && len(n.Args) > 0 {
						pairs(n.Args[:1], 0)
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestLogKeys: one key per concept. No log call uses a retired key (`error` for `err`, `interface`
// for `iface`, …).
func TestLogKeys(t *testing.T) {
	keys := logKeys(t, "../..")
	if len(keys) < 20 {
		t.Fatalf("found only %d log keys in the tree: the scan lost its way", len(keys))
	}
	for _, k := range keys {
		if use, ok := retiredLogKeys[k.key]; ok {
			t.Errorf("%s: log key %q: use %q (docs/operations.md, \"Logging\")", k.pos, k.key, use)
		}
	}
}
