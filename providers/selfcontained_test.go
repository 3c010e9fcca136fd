package providers_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// moduleRoot is the directory of paynorm's go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/paynorm/paynorm\n") {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod of github.com/paynorm/paynorm not found")
		}
		dir = parent
	}
}

// A fresh clone with nothing beside it passes its own tests: no test or
// build step reads a file outside the repository. Every relative path a Go
// file names ("../x") must resolve inside the module, and no file names
// the team's shared reference directory; the data tests need lives in
// testdata/ with its source noted.
func TestTheRepositoryNeedsNothingBesideIt(t *testing.T) {
	root := moduleRoot(t)
	shared := ".." + "/shared" // spelled apart so this file does not match itself
	checked := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); name == ".git" || name == "node_modules" {
				return filepath.SkipDir
			}
			return nil
		}
		ext := filepath.Ext(path)
		if ext != ".go" && ext != ".sh" && ext != ".yaml" && ext != ".yml" && d.Name() != "Dockerfile" && d.Name() != "Caddyfile" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if strings.Contains(string(b), shared) || strings.Contains(string(b), "shared/"+"reference") {
			t.Errorf("%s names the shared reference directory, which a clone does not have", rel)
		}
		checked++
		if ext != ".go" {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, b, 0)
		if err != nil {
			return nil // not ours to judge (build-tagged generators and the like)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			s, err := strconv.Unquote(lit.Value)
			if err != nil || !strings.HasPrefix(s, "../") || strings.ContainsAny(s, " \n?&=") {
				return true
			}
			target := filepath.Join(filepath.Dir(path), s)
			if r, err := filepath.Rel(root, target); err != nil || strings.HasPrefix(r, "..") {
				t.Errorf("%s reads %q, outside the repository", rel, s)
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 100 {
		t.Fatalf("only %d files checked", checked)
	}
}
