package e2e

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// result is what a finished command left behind.
type result struct {
	stdout, stderr string
	code           int // exit status; -1 when killed by a signal or not started
}

// cmdTimeout bounds every command a test runs: nothing in this suite may hang.
const cmdTimeout = 2 * time.Minute

// runNowhere runs the binary under test and returns its output and exit status.
func runNowhere(t *testing.T, args ...string) result {
	t.Helper()
	return runCmdStdin(t, nil, nowhereBin, args...)
}

// runCmdStdin runs name with args, feeding stdin (nil: none), bounded by cmdTimeout.
func runCmdStdin(t *testing.T, stdin io.Reader, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		t.Fatalf("%s %s: still running after %s (killed)\nstdout: %s\nstderr: %s", name, strings.Join(args, " "),
			cmdTimeout, r.stdout, r.stderr)
	}
	return r
}

// mustNowhere runs the binary and fails the test unless it exits 0.
func mustNowhere(t *testing.T, args ...string) result {
	t.Helper()
	r := runNowhere(t, args...)
	if r.code != 0 {
		t.Fatalf("nowhere %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// mustRun runs a system tool and fails the test unless it exits 0; it returns stdout.
func mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	r := runCmdStdin(t, nil, name, args...)
	if r.code != 0 {
		t.Fatalf("%s %s: exit %d\nstdout: %s\nstderr: %s", name, strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// assertOneLineError checks the contract for bad input: non-zero exit, exactly one line
// on stderr starting with "nowhere:", no panic trace, and the line names what is wrong
// (every string in wants appears in it).
func assertOneLineError(t *testing.T, what string, r result, wants ...string) {
	t.Helper()
	if r.code == 0 {
		t.Errorf("%s: exit 0, want a failure\nstdout: %s\nstderr: %s", what, r.stdout, r.stderr)
		return
	}
	msg := strings.TrimRight(r.stderr, "\n")
	if strings.Contains(msg, "\n") {
		t.Errorf("%s: stderr has %d lines, want one:\n%s", what, strings.Count(msg, "\n")+1, msg)
	}
	if !strings.HasPrefix(msg, "nowhere: ") {
		t.Errorf("%s: stderr does not start with \"nowhere: \": %q", what, msg)
	}
	for _, bad := range []string{"panic", "goroutine ", "runtime error"} {
		if strings.Contains(msg, bad) {
			t.Errorf("%s: stderr looks like a crash (%q): %s", what, bad, msg)
		}
	}
	for _, w := range wants {
		if !strings.Contains(msg, w) {
			t.Errorf("%s: error %q does not mention %q", what, msg, w)
		}
	}
	if !t.Failed() {
		t.Logf("%s: exit %d: %s", what, r.code, msg)
	}
}

// waitFor polls cond every 10 ms until it holds or limit passes. It is for waiting on
// another process (a log line, a socket, a mount), never for asserting speed.
func waitFor(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// readFile returns a file's content or "" when it cannot be read (for diagnostics).
func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}
