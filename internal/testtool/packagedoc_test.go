package testtool

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

// TestEveryPackageSaysWhatItOwns: every package of the module has a package
// doc comment, so the next engineer can tell from `go doc` (or the top of
// a file) what belongs where. A library's starts "Package <name> ", a
// command's "Command <directory> ", and goes on to say what the package
// owns, in a sentence or two.
//
// Exempt: packages made only of _test.go files (e2e), which have nothing
// for go doc to show; they document themselves in one of their test files.
func TestEveryPackageSaysWhatItOwns(t *testing.T) {
	cmd := exec.Command(Require(t, "go"), "list", "-json=ImportPath,Name,Doc,GoFiles,CgoFiles", "./...")
	cmd.Dir = filepath.Join("..", "..") // the module root
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	checked := 0
	for {
		var p struct {
			ImportPath, Name, Doc string
			GoFiles, CgoFiles     []string
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		if len(p.GoFiles)+len(p.CgoFiles) == 0 {
			continue // tests only: exempt, see above
		}
		checked++
		want := "Package " + p.Name + " "
		if p.Name == "main" {
			want = "Command " + path.Base(p.ImportPath) + " "
		}
		switch {
		case p.Doc == "":
			t.Errorf("%s has no package doc comment; add one (a doc.go, or above the package clause of its main file) starting %q that says what it owns", p.ImportPath, want)
		case !strings.HasPrefix(p.Doc, want) || len(strings.Fields(p.Doc)) < 5:
			t.Errorf("%s: package doc %q should start %q and say what the package owns", p.ImportPath, p.Doc, want)
		}
	}
	if checked == 0 {
		t.Fatal("go list found no packages with Go files")
	}
}
