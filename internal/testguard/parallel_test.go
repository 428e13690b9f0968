// Package testguard checks the test sources of the module for patterns that
// make tests fail on a busy machine. It has tests only.
package testguard

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The rule: a parallel subtest (t.Run with a function literal that calls
// t.Parallel) must not use a context, a timer, a ticker, a time channel or
// a time.Now() value that its parent created (directly, through a closure
// of the parent, or through a struct of the package that holds one, such as
// a test bundle). A parallel subtest starts only once its parent's function
// has returned and a slot under -parallel is free, possibly minutes later
// on a busy machine, when the parent's deadline may have passed. Each
// subtest makes its own, after t.Parallel.
//
// The check type-checks every package's Go files with its tests and
// reports each such use. Its limits: imports outside the standard library
// are not loaded, so a value whose type comes from another package (of
// this module or another) is not looked into; it follows closures only
// when a function literal is assigned to a variable; and it looks only at
// t.Run calls with a function literal (not at subtests started by a
// helper). TestGuardFindsTheSamples shows it on known cases.

// TestParallelSubtestsMakeTheirOwnDeadlines checks the rule on the module.
func TestParallelSubtestsMakeTheirOwnDeadlines(t *testing.T) {
	t.Parallel()
	requireGo(t)
	root, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	_, err = os.Stat(filepath.Join(root, "go.mod"))
	require.NoError(t, err, "the module root")

	cmd := exec.Command("go", "list", "-json", "./...")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "go list: %s", stderr.String())
	var sets [][]string // the files of each package to type-check
	for dec := json.NewDecoder(bytes.NewReader(out)); dec.More(); {
		var p struct {
			Dir                                string
			GoFiles, TestGoFiles, XTestGoFiles []string
		}
		require.NoError(t, dec.Decode(&p))
		abs := func(names []string) []string {
			var paths []string
			for _, n := range names {
				paths = append(paths, filepath.Join(p.Dir, n))
			}
			return paths
		}
		for _, names := range [][]string{append(slices.Clone(p.GoFiles), p.TestGoFiles...), p.XTestGoFiles} {
			if len(names) > 0 {
				sets = append(sets, abs(names))
			}
		}
	}

	c := newChecker(t, sets...)
	var findings []string
	for _, files := range sets {
		findings = append(findings, c.check(t, files)...)
	}
	for _, f := range findings {
		t.Error(f)
	}
	// Not checking nothing: the module has dozens of parallel subtests.
	require.Greater(t, c.parallelSubtests, 20, "parallel subtests found")
	t.Logf("%d parallel subtests checked", c.parallelSubtests)
}

// TestGuardFindsTheSamples runs the check on testdata/sample.go, whose
// lines marked "// want" must be reported, and only those.
func TestGuardFindsTheSamples(t *testing.T) {
	t.Parallel()
	requireGo(t)
	path, err := filepath.Abs(filepath.Join("testdata", "sample.go"))
	require.NoError(t, err)
	c := newChecker(t, []string{path})
	findings := c.check(t, []string{path})

	src, err := os.ReadFile(path)
	require.NoError(t, err)
	var want []int
	for i, line := range strings.Split(string(src), "\n") {
		if strings.HasSuffix(line, "// want") {
			want = append(want, i+1)
		}
	}
	require.NotEmpty(t, want)
	lineOf := regexp.MustCompile(`^[^:]+:(\d+):`)
	var got []int
	for _, f := range findings {
		m := lineOf.FindStringSubmatch(f)
		require.NotNil(t, m, f)
		n, err := strconv.Atoi(m[1])
		require.NoError(t, err)
		got = append(got, n)
	}
	require.Equal(t, want, got, "lines reported:\n%s", strings.Join(findings, "\n"))
}

// requireGo skips t without the go command, which lists the packages and
// the standard library's export data.
func requireGo(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("the go command is needed: ", err)
	}
}

// checker type-checks sets of files and reports breaches of the rule.
type checker struct {
	fset     *token.FileSet
	importer types.Importer

	parallelSubtests int // seen so far
}

// newChecker returns a checker that can import the standard library
// packages the given files import.
func newChecker(t *testing.T, sets ...[]string) *checker {
	t.Helper()
	fset := token.NewFileSet()
	std := map[string]bool{}
	for _, files := range sets {
		for _, path := range files {
			f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
			require.NoError(t, err)
			for _, imp := range f.Imports {
				p, err := strconv.Unquote(imp.Path.Value)
				require.NoError(t, err)
				if first, _, _ := strings.Cut(p, "/"); !strings.Contains(first, ".") && p != "C" && p != "unsafe" {
					std[p] = true
				}
			}
		}
	}
	// The export data of the standard library packages, from the build
	// cache (go list compiles what is missing).
	exports := map[string]string{}
	if len(std) > 0 {
		args := []string{"list", "-export", "-deps", "-f", "{{if .Standard}}{{.ImportPath}}\t{{.Export}}{{end}}"}
		cmd := exec.Command("go", append(args, slices.Sorted(maps.Keys(std))...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		require.NoError(t, err, "go list -export: %s", stderr.String())
		for line := range strings.Lines(string(out)) {
			if path, export, ok := strings.Cut(strings.TrimSpace(line), "\t"); ok && export != "" {
				exports[path] = export
			}
		}
	}
	gc := importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
		if export, ok := exports[path]; ok {
			return os.Open(export)
		}
		return nil, fmt.Errorf("no export data for %s", path)
	})
	return &checker{fset: fset, importer: stdOnly{gc, exports}}
}

// stdOnly imports the standard library and refuses everything else.
type stdOnly struct {
	gc      types.Importer
	exports map[string]string
}

func (s stdOnly) Import(path string) (*types.Package, error) {
	if _, ok := s.exports[path]; !ok && path != "unsafe" {
		return nil, errors.New("not loaded by testguard")
	}
	return s.gc.Import(path)
}

// check type-checks files (one package) and returns the breaches of the
// rule, as "file:line: message", in source order.
func (c *checker) check(t *testing.T, paths []string) []string {
	t.Helper()
	var files []*ast.File
	for _, path := range paths {
		f, err := parser.ParseFile(c.fset, path, nil, parser.SkipObjectResolution)
		require.NoError(t, err)
		files = append(files, f)
	}
	info := &types.Info{
		Types: map[ast.Expr]types.TypeAndValue{},
		Defs:  map[*ast.Ident]types.Object{},
		Uses:  map[*ast.Ident]types.Object{},
	}
	conf := types.Config{
		Importer: c.importer,
		Error:    func(error) {}, // imports outside the standard library fail: carry on
	}
	pkg, _ := conf.Check(files[0].Name.Name, c.fset, files, info)

	// The function literal assigned to each variable, to look into the
	// closures a subtest calls.
	closures := map[*types.Var][]*ast.FuncLit{}
	// The expressions assigned to each variable, for time.Now() values.
	values := map[*types.Var][]ast.Expr{}
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			var lhs, rhs []ast.Expr
			switch n := n.(type) {
			case *ast.AssignStmt:
				lhs, rhs = n.Lhs, n.Rhs
			case *ast.ValueSpec:
				for _, name := range n.Names {
					lhs = append(lhs, name)
				}
				rhs = n.Values
			default:
				return true
			}
			if len(lhs) != len(rhs) {
				return true
			}
			for i, l := range lhs {
				id, ok := l.(*ast.Ident)
				if !ok {
					continue
				}
				obj := info.Defs[id]
				if obj == nil {
					obj = info.Uses[id]
				}
				v, ok := obj.(*types.Var)
				if !ok {
					continue
				}
				values[v] = append(values[v], rhs[i])
				if lit, ok := rhs[i].(*ast.FuncLit); ok {
					closures[v] = append(closures[v], lit)
				}
			}
			return true
		})
	}

	var findings []string
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			lit := parallelSubtest(info, n)
			if lit == nil {
				return true
			}
			c.parallelSubtests++
			seen := map[*types.Var]bool{}
			// visit looks at the variables body uses; site is the use in
			// the subtest through which body is reached (nil for the
			// subtest itself).
			var visit func(body *ast.FuncLit, site *ast.Ident, via string)
			visit = func(body *ast.FuncLit, site *ast.Ident, via string) {
				ast.Inspect(body.Body, func(n ast.Node) bool {
					id, ok := n.(*ast.Ident)
					if !ok {
						return true
					}
					v, ok := info.Uses[id].(*types.Var)
					// The parent's variables: declared outside the
					// subtest and, in a closure, outside the closure
					// (its own are fresh at each call).
					if !ok || v.IsField() || seen[v] || !declaredOutside(v, pkg, lit) || !declaredOutside(v, pkg, body) {
						return true
					}
					seen[v] = true
					at := site
					if at == nil {
						at = id
					}
					if what := deadline(v, pkg, values[v]); what != "" {
						findings = append(findings, fmt.Sprintf("%s: a parallel subtest uses %s%s, %s made by its parent at %s: make it in the subtest, after t.Parallel",
							c.fset.Position(at.Pos()), v.Name(), via, what, c.fset.Position(v.Pos())))
						return true
					}
					for _, cl := range closures[v] {
						visit(cl, at, via+" (through "+v.Name()+")")
					}
					return true
				})
			}
			visit(lit, nil, "")
			return true
		})
	}
	// A use in nested parallel subtests is reported for each: once is
	// enough.
	slices.SortFunc(findings, func(a, b string) int {
		if c := compareFindings(a, b); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	return slices.Compact(findings)
}

// compareFindings orders "file:line:col: ..." by file, then line.
func compareFindings(a, b string) int {
	fa, la := splitPos(a)
	fb, lb := splitPos(b)
	if c := strings.Compare(fa, fb); c != 0 {
		return c
	}
	return la - lb
}

func splitPos(s string) (string, int) {
	parts := strings.SplitN(s, ":", 3)
	if len(parts) < 3 {
		return s, 0
	}
	n, _ := strconv.Atoi(parts[1])
	return parts[0], n
}

// parallelSubtest returns the function literal of n when n is a call
// x.Run(name, func(t *testing.T) { ...; t.Parallel(); ... }).
func parallelSubtest(info *types.Info, n ast.Node) *ast.FuncLit {
	call, ok := n.(*ast.CallExpr)
	if !ok || len(call.Args) != 2 {
		return nil
	}
	if sel, ok := call.Fun.(*ast.SelectorExpr); !ok || sel.Sel.Name != "Run" {
		return nil
	}
	lit, ok := call.Args[1].(*ast.FuncLit)
	if !ok || len(lit.Type.Params.List) != 1 || len(lit.Type.Params.List[0].Names) != 1 {
		return nil
	}
	param := lit.Type.Params.List[0].Names[0]
	if tv, ok := info.Types[lit.Type.Params.List[0].Type]; !ok || tv.Type.String() != "*testing.T" {
		return nil
	}
	for _, stmt := range lit.Body.List {
		es, ok := stmt.(*ast.ExprStmt)
		if !ok {
			continue
		}
		c, ok := es.X.(*ast.CallExpr)
		if !ok || len(c.Args) != 0 {
			continue
		}
		sel, ok := c.Fun.(*ast.SelectorExpr)
		if !ok || sel.Sel.Name != "Parallel" {
			continue
		}
		if x, ok := sel.X.(*ast.Ident); ok && info.Uses[x] != nil && info.Uses[x] == info.Defs[param] {
			return lit
		}
	}
	return nil
}

// declaredOutside reports whether v is a local variable (of a function,
// not of the package) declared outside lit.
func declaredOutside(v *types.Var, pkg *types.Package, lit *ast.FuncLit) bool {
	if v.Parent() == nil || v.Parent() == types.Universe || pkg != nil && v.Parent() == pkg.Scope() {
		return false
	}
	return v.Pos() < lit.Pos() || v.Pos() >= lit.End()
}

// deadline describes what makes v a deadline of its parent ("" if
// nothing): its type is or holds a context, timer, ticker or time channel,
// or it is a time.Time assigned from an expression calling time.Now.
func deadline(v *types.Var, pkg *types.Package, assigned []ast.Expr) string {
	if what := holdsDeadline(v.Type(), pkg, map[types.Type]bool{}); what != "" {
		return what
	}
	if isNamed(v.Type(), "time", "Time") {
		for _, e := range assigned {
			if callsTimeNow(e) {
				return "a time.Now() value"
			}
		}
	}
	return ""
}

// holdsDeadline describes the context, timer, ticker or time channel that
// a value of type typ is or holds ("" if none). It looks into the structs
// of pkg only: the standard library's types (testing.T holds a context)
// are not deadlines a test made.
func holdsDeadline(typ types.Type, pkg *types.Package, seen map[types.Type]bool) string {
	if seen[typ] {
		return ""
	}
	seen[typ] = true
	switch {
	case isNamed(typ, "context", "Context"):
		return "a context"
	case isNamed(typ, "time", "Timer"), isNamed(typ, "time", "Ticker"):
		return "a " + typ.String()
	}
	switch u := typ.(type) {
	case *types.Pointer:
		if isNamed(u.Elem(), "time", "Timer") || isNamed(u.Elem(), "time", "Ticker") {
			return "a " + u.String()
		}
		return holdsDeadline(u.Elem(), pkg, seen)
	case *types.Chan:
		if isNamed(u.Elem(), "time", "Time") {
			return "a time channel"
		}
	case *types.Named:
		if pkg == nil || u.Obj().Pkg() != pkg {
			return ""
		}
		if what := holdsDeadline(u.Underlying(), pkg, seen); what != "" {
			return what + " (in " + u.Obj().Name() + ")"
		}
	case *types.Struct:
		for f := range u.Fields() {
			if what := holdsDeadline(f.Type(), pkg, seen); what != "" {
				return what
			}
		}
	case *types.Slice:
		return holdsDeadline(u.Elem(), pkg, seen)
	case *types.Array:
		return holdsDeadline(u.Elem(), pkg, seen)
	case *types.Map:
		return holdsDeadline(u.Elem(), pkg, seen)
	}
	return ""
}

// isNamed reports whether typ is the named type pkgPath.name.
func isNamed(typ types.Type, pkgPath, name string) bool {
	n, ok := typ.(*types.Named)
	return ok && n.Obj().Pkg() != nil && n.Obj().Pkg().Path() == pkgPath && n.Obj().Name() == name
}

// callsTimeNow reports whether e calls time.Now (time.Now(),
// time.Now().Add(d), ...).
func callsTimeNow(e ast.Expr) bool {
	found := false
	ast.Inspect(e, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok {
			if x, ok := sel.X.(*ast.Ident); ok && x.Name == "time" && sel.Sel.Name == "Now" {
				found = true
			}
		}
		return !found
	})
	return found
}
