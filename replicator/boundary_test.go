package replicator_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The boundary of docs/decisions.md, "Only replicator talks JetStream":
// outside tests, no package but replicator imports the JetStream client,
// bench aside for its raw baselines; and replicator hands out no JetStream
// handle through which a holder could call that API anyway.

const jetstreamPkg = "github.com/nats-io/nats.go/jetstream"

// mayImportJetStream are the directories, relative to the module root, of
// the packages allowed to import jetstreamPkg outside tests.
var mayImportJetStream = []string{"replicator", "bench"}

// jetstreamDataTypes are the jetstream types replicator's exported API may
// mention: plain configuration data, which nobody can act on without a
// JetStream client of their own.
var jetstreamDataTypes = []string{"StreamConfig", "ConsumerConfig"}

// goFiles calls each with the path, relative to root, of every non-test .go
// file under root, whatever its build tags, skipping testdata, vendor and
// hidden directories.
func goFiles(root string, each func(rel string) error) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		return each(filepath.ToSlash(rel))
	})
}

// jetstreamImporters returns the non-test .go files under root that import
// jetstreamPkg from a directory not in allowed (breaches), and those that
// do from one in allowed (permitted), as paths relative to root.
func jetstreamImporters(root string, allowed []string) (breaches, permitted []string, err error) {
	fset := token.NewFileSet()
	err = goFiles(root, func(rel string) error {
		f, err := parser.ParseFile(fset, filepath.Join(root, rel), nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		if importName(f, jetstreamPkg) == "" {
			return nil
		}
		if slices.Contains(allowed, filepath.ToSlash(filepath.Dir(rel))) {
			permitted = append(permitted, rel)
		} else {
			breaches = append(breaches, rel)
		}
		return nil
	})
	return breaches, permitted, err
}

// importName is the name f refers to the package at path by, or "" if f
// does not import it.
func importName(f *ast.File, path string) string {
	for _, imp := range f.Imports {
		if p, err := strconv.Unquote(imp.Path.Value); err != nil || p != path {
			continue
		}
		if imp.Name != nil {
			return imp.Name.Name
		}
		return filepath.Base(path)
	}
	return ""
}

// jetstreamHandles returns, as "file:line: what", every exported function,
// method or struct field of the non-test .go files of dir (a package) whose
// type mentions a jetstream type other than the data types in allowed.
func jetstreamHandles(dir string, allowed []string) ([]string, error) {
	fset := token.NewFileSet()
	var out []string
	err := goFiles(dir, func(rel string) error {
		if strings.Contains(rel, "/") {
			return nil // another package
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, rel), nil, 0)
		if err != nil {
			return err
		}
		local := importName(f, jetstreamPkg)
		if local == "" || local == "_" {
			return nil
		}
		report := func(what string, typ ast.Node) {
			ast.Inspect(typ, func(n ast.Node) bool {
				sel, ok := n.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				if x, ok := sel.X.(*ast.Ident); ok && x.Name == local && !slices.Contains(allowed, sel.Sel.Name) {
					out = append(out, fmt.Sprintf("%s:%d: %s mentions jetstream.%s", rel, fset.Position(sel.Pos()).Line, what, sel.Sel.Name))
				}
				return true
			})
		}
		for _, decl := range f.Decls {
			switch d := decl.(type) {
			case *ast.FuncDecl:
				if d.Name.IsExported() && (d.Recv == nil || exportedReceiver(d.Recv)) {
					report(d.Name.Name, d.Type)
				}
			case *ast.GenDecl:
				for _, spec := range d.Specs {
					ts, ok := spec.(*ast.TypeSpec)
					if !ok || !ts.Name.IsExported() {
						continue
					}
					st, ok := ts.Type.(*ast.StructType)
					if !ok {
						report(ts.Name.Name, ts.Type)
						continue
					}
					for _, field := range st.Fields.List {
						for _, n := range field.Names {
							if n.IsExported() {
								report(ts.Name.Name+"."+n.Name, field.Type)
							}
						}
						if len(field.Names) == 0 { // embedded: promoted
							report(ts.Name.Name+" (embedded)", field.Type)
						}
					}
				}
			}
		}
		return nil
	})
	return out, err
}

// exportedReceiver reports whether a method's receiver type is exported.
func exportedReceiver(recv *ast.FieldList) bool {
	t := recv.List[0].Type
	if s, ok := t.(*ast.StarExpr); ok {
		t = s.X
	}
	if ix, ok := t.(*ast.IndexExpr); ok {
		t = ix.X
	}
	id, ok := t.(*ast.Ident)
	return ok && id.IsExported()
}

// moduleRoot is the directory of the module's go.mod, above this package.
func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root: %v", err)
	}
	return root
}

// TestOnlyReplicatorImportsJetStream walks the module: a file of any other
// package (bench aside) importing the JetStream client fails, named.
func TestOnlyReplicatorImportsJetStream(t *testing.T) {
	breaches, permitted, err := jetstreamImporters(moduleRoot(t), mayImportJetStream)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range breaches {
		t.Errorf("%s imports %s: only package replicator talks JetStream (docs/decisions.md); take a *replicator.Conn instead", f, jetstreamPkg)
	}
	// The walk saw the imports it is there to see.
	if !slices.Contains(permitted, "replicator/conn.go") {
		t.Fatalf("the walk did not see replicator/conn.go import %s; it saw %v", jetstreamPkg, permitted)
	}
}

// TestReplicatorHandsOutNoJetStream: replicator's exported API mentions no
// jetstream type but configuration data, so a holder of what it returns
// cannot call the JetStream API either.
func TestReplicatorHandsOutNoJetStream(t *testing.T) {
	handles, err := jetstreamHandles(".", jetstreamDataTypes)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range handles {
		t.Errorf("%s: replicator's exported API hands out no JetStream handle", h)
	}
	// The parse saw jetstream in the exported API where it is allowed.
	all, err := jetstreamHandles(".", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(all, func(s string) bool { return strings.Contains(s, "StreamConfig mentions jetstream.StreamConfig") }) {
		t.Fatalf("the check did not see StreamConfig return a jetstream.StreamConfig; it saw %v", all)
	}
}

// TestBoundaryChecksCatchBreaches is the negative control of both checks,
// on a synthetic module: the breaches are reported, by file, and nothing
// else is.
func TestBoundaryChecksCatchBreaches(t *testing.T) {
	root := t.TempDir()
	write := func(rel, src string) {
		t.Helper()
		path := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	imp := func(pkg, name, extra string) string {
		return fmt.Sprintf("package %s\n\nimport %s %q\n\n%s\n", pkg, name, jetstreamPkg, extra)
	}
	write("go.mod", "module synthetic\n")
	write("region/region.go", imp("region", "", "var _ jetstream.JetStream"))                               // breach
	write("auditor/tagged.go", "//go:build regions\n\n"+imp("auditor", "js", "var _ js.JetStream"))         // breach, renamed, under a tag
	write("region/region_test.go", imp("region", "", "var _ jetstream.JetStream"))                          // a test: allowed
	write("region/other.go", "package region\n\nimport \"github.com/nats-io/nats.go\"\n\nvar _ nats.Msg\n") // the NATS client itself: allowed
	write("bench/bench.go", imp("bench", "", "var _ jetstream.JetStream"))                                  // bench: allowed
	write("testdata/x.go", imp("x", "", ""))                                                                // testdata: skipped
	write("replicator/conn.go", imp("replicator", "", `
type Conn struct{ js jetstream.JetStream }
type Open struct{ S jetstream.Stream }
type Data struct{ C jetstream.StreamConfig }
func New() jetstream.JetStream { return nil }
func Ensure(c *Conn) (jetstream.Stream, error) { return nil, nil }
func Config() jetstream.StreamConfig { return jetstream.StreamConfig{} }
func open(c *Conn) jetstream.Stream { return nil }
func (c *Conn) Raw() jetstream.JetStream { return c.js }
type conn struct{}
func (c conn) Raw() jetstream.JetStream { return nil }
`))
	breaches, permitted, err := jetstreamImporters(root, mayImportJetStream)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"auditor/tagged.go", "region/region.go"}; !slices.Equal(breaches, want) {
		t.Errorf("breaches %v, want %v", breaches, want)
	}
	if want := []string{"bench/bench.go", "replicator/conn.go"}; !slices.Equal(permitted, want) {
		t.Errorf("permitted %v, want %v", permitted, want)
	}

	handles, err := jetstreamHandles(filepath.Join(root, "replicator"), jetstreamDataTypes)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"conn.go:7: Open.S mentions jetstream.Stream",
		"conn.go:9: New mentions jetstream.JetStream",
		"conn.go:10: Ensure mentions jetstream.Stream",
		"conn.go:13: Raw mentions jetstream.JetStream",
	}
	if !slices.Equal(handles, want) {
		t.Errorf("handles:\n%s\nwant:\n%s", strings.Join(handles, "\n"), strings.Join(want, "\n"))
	}
}
