package source_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/nowhere-boot/nowhere/internal/store"
)

// There is one startup probe timeout, store.StartupProbe: the CLI's and the boot daemon's
// had drifted apart (3 s and 5 s). No other package may declare its own.
func TestOneStartupProbe(t *testing.T) {
	if store.StartupProbe <= 0 {
		t.Fatal("store.StartupProbe must be positive")
	}
	decl := regexp.MustCompile(`(?i)\b(const|var)\s+\w*probe\w*\s*=`)
	block := regexp.MustCompile(`(?im)^\s+\w*startupProbe\w*\s*=`)
	root := filepath.Join("..", "..")
	for _, dir := range []string{"cmd", "internal"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return err
			}
			if filepath.ToSlash(p) == "../../internal/store/open.go" {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if m := decl.Find(b); m != nil {
				t.Errorf("%s declares a probe timeout (%q): use store.StartupProbe", p, m)
			}
			if m := block.Find(b); m != nil {
				t.Errorf("%s declares a startup probe timeout (%q): use store.StartupProbe", p, m)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"../../cmd/nowhere/sources.go", "../../internal/boot/rootd/sources.go"} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "store.StartupProbe") {
			t.Errorf("%s does not bound its startup probe by store.StartupProbe", p)
		}
	}
}
