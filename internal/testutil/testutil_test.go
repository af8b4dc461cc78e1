package testutil

import (
	"fmt"
	"strings"
	"testing"
)

// fatalRecorder stands in for a test whose Fatalf is recorded instead of ending it.
type fatalRecorder struct {
	testing.TB
	fatal string
}

func (r *fatalRecorder) Helper() {}
func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.fatal = fmt.Sprintf(format, args...)
}

func TestToolFindsAnInstalledProgram(t *testing.T) {
	if p := Tool(t, "sh"); !strings.HasSuffix(p, "/sh") {
		t.Fatalf("Tool(sh) = %q", p)
	}
}

func TestToolFailsOnAMissingProgram(t *testing.T) {
	r := &fatalRecorder{TB: t}
	if p := Tool(r, "nowhere-no-such-tool"); p != "" {
		t.Fatalf("Tool returned %q for a missing program", p)
	}
	if !strings.Contains(r.fatal, "nowhere-no-such-tool is not installed") || !strings.Contains(r.fatal, "install-deps.sh") {
		t.Fatalf("missing program: want a failure naming it and the installer, got %q", r.fatal)
	}
}

func TestMissingSkipsOutsideCI(t *testing.T) {
	t.Setenv("CI", "")
	ran := false
	t.Run("inner", func(t *testing.T) {
		defer func() { ran = true }()
		Missing(t, "no such part")
	})
	if !ran {
		t.Fatal("inner test did not end")
	}
}
