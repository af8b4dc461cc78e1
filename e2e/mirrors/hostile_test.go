package mirrors

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// hostileCase is what a client must do about one hostile mode (docs/security.md,
// "Hostile mirrors").
type hostileCase struct {
	mode hostileMode
	// hard: the mode is a lie (metadata that fails verification, a corrupt chunk): the
	// mirror is demoted hard and shown "bad"; otherwise it is merely set aside (down).
	hard bool
	// setAside matches the mount's log line that shows the hostile mirror set aside,
	// with HOSTILE standing for its URL ("": no line: see serves).
	setAside string
	// serves: the mirror is not hostile (noLength) and must serve chunks, with no line
	// naming it. Without it and without setAside (tarpitChunks, whose stalled requests
	// lose to hedges and end cancelled, unlogged), the mirror must have been asked for
	// chunks and have served none.
	serves bool
	// aloneVerb is the command run with the hostile mirror alone: info (the metadata is
	// what is wrong) or extract (only the chunks are wrong).
	aloneVerb string
	// alone matches the one error line of that command ("": it must succeed).
	alone string
	// timeout is extract's --timeout (default 5s).
	timeout string
}

var hostileCases = []hostileCase{
	{mode: wrongBytes, hard: true,
		setAside:  `mirror HOSTILE served a corrupt chunk [0-9a-f]+: .*\(demoted hard`,
		aloneVerb: "extract", alone: `extract HOSTILE/images/test: chunk [0-9a-f]+: every mirror failed: HOSTILE: chunk [0-9a-f]+: corrupt chunk: content does not match its name`},
	{mode: staleMetadata, hard: true, // the client has seen version 2: version 1 is a rollback
		setAside:  `mirror HOSTILE served metadata that failed verification: HOSTILE/images/test/1\.index: refused: the store offers version 1 of "test", older than version 2 already accepted \(rollback`,
		aloneVerb: "info", alone: `HOSTILE/images/test/1\.index: refused: the store offers version 1 of "test", older than version 2 already accepted \(rollback; remembered in .*/nowhere/trust-state`},
	{mode: otherImage, hard: true,
		setAside:  `mirror HOSTILE served metadata that failed verification: HOSTILE/images/test/latest: refused: the pointer is for image "other", not "test" \(mix-and-match\)`,
		aloneVerb: "info", alone: `HOSTILE/images/test/latest: refused: the pointer is for image "other", not "test" \(mix-and-match\)`},
	{mode: otherKey, hard: true,
		setAside:  `mirror HOSTILE served metadata that failed verification: HOSTILE/images/test/latest: refused: the latest pointer is signed by key [0-9A-F]+, which is not a trusted key`,
		aloneVerb: "info", alone: `HOSTILE/images/test/latest: refused: the latest pointer is signed by key [0-9A-F]+, which is not a trusted key \(trusted: [0-9A-F]+\)`},
	{mode: html, hard: true,
		setAside:  `mirror HOSTILE served metadata that failed verification: HOSTILE/images/test/latest\S*: refused: `,
		aloneVerb: "info", alone: `HOSTILE/images/test/latest\S*: refused: `},
	{mode: stallAfterHeaders,
		setAside:  `mirror HOSTILE does not answer: `,
		aloneVerb: "info", alone: `HOSTILE/images/test/latest\S*: .*(no complete response|response too slow|no answer)`},
	{mode: trickle,
		setAside:  `mirror HOSTILE (failed|does not answer): `,
		aloneVerb: "info", alone: `HOSTILE/images/test/latest\S*: .*(no complete response|response too slow|no answer)`},
	// --timeout 15s: longer than the 10 s over which --min-rate is measured, so the
	// stalled chunk requests are cut off by it and the error says so.
	{mode: tarpitChunks,
		aloneVerb: "extract", timeout: "15s",
		alone: `extract HOSTILE/images/test: chunk [0-9a-f]+: every mirror failed: HOSTILE/chunks/\S+: response too slow: 0 bytes in the last 10s`},
	{mode: endlessBody,
		setAside:  `mirror HOSTILE does not answer: `,
		aloneVerb: "info", alone: `HOSTILE/images/test/latest\S*: .*larger than`},
	{mode: noLength, serves: true, aloneVerb: "extract"},
}

// TestHostileMirrors: for each hostile mode, a mount whose first mirror is hostile and
// second honest reads the whole image right, and the hostile mirror is set aside (logged,
// and in the metrics); the same mirror alone makes the command fail with one line naming
// its URL and what was wrong, within a bounded wait. The honest mirror answers 15 ms
// slower than the hostile one, so the hostile mirror ranks first and is the one asked.
func TestHostileMirrors(t *testing.T) {
	needFUSE(t)
	fx := makeHostileFixture(t, 2<<20, 60)
	_, served := serveStore(t, fx.Store, "127.0.0.1:0")
	good := slowProxy(t, strings.TrimPrefix(served, "http://"), 15*time.Millisecond)

	for _, c := range hostileCases {
		t.Run(string(c.mode), func(t *testing.T) {
			t.Parallel()
			h := fx.start(t, c.mode)
			// The client's rollback memory: $XDG_CACHE_HOME/nowhere/trust-state, its own.
			env := []string{"XDG_CACHE_HOME=" + t.TempDir()}
			if c.mode == staleMetadata {
				// The client has seen version 2 (from the honest mirror alone).
				out, err := runEnv(t, time.Minute, env, "info", good+"/images/test", "--key", publicKey)
				if err != nil || !strings.Contains(out, "version:   2") {
					t.Fatalf("info from the honest mirror: %v\n%s", err, out)
				}
			}
			expand := func(re string) *regexp.Regexp {
				return regexp.MustCompile(strings.ReplaceAll(re, "HOSTILE", regexp.QuoteMeta(h.URL)))
			}

			t.Run("with an honest mirror", func(t *testing.T) {
				metrics := freePort(t)
				m := mountEnv(t, env, h.URL+"/images/test", "--mirror", good, "--metrics", metrics, "--timeout", "60s")
				start := time.Now()
				sum, err := hashFile(m.image(), nil)
				took := time.Since(start)
				if err != nil || sum != fx.Want {
					t.Fatalf("read through the mount: %v (content matches: %v)", err, sum == fx.Want)
				}
				if took > 90*time.Second {
					t.Errorf("the read took %s", took)
				}
				url := "http://" + metrics + "/metrics"
				ok := metric(t, url, "nowhere_mirror_requests_total", `mirror="`+h.URL+`"`, `result="ok"`)
				switch {
				case c.serves:
					if ok == 0 {
						t.Errorf("mirror %s (%s) served no chunk", h.URL, c.mode)
					}
					if strings.Contains(m.output(), h.URL) {
						t.Errorf("the log names %s (%s), which did nothing wrong:\n%s", h.URL, c.mode, m.output())
					}
				case c.setAside == "":
					if h.Requests(classChunk) == 0 || ok != 0 {
						t.Errorf("%s (%s): asked for %d chunks, %v served: want asked, none served", h.URL, c.mode, h.Requests(classChunk), ok)
					}
				default:
					line := m.waitOutput(`(`+expand(c.setAside).String()+`[^\n]*)`, 10*time.Second) // the whole line
					t.Logf("%s: set aside: %s", c.mode, line)
					if ok != 0 {
						t.Errorf("the metrics count %v chunks served by %s (%s)", ok, h.URL, c.mode)
					}
				}
				if c.mode == wrongBytes {
					if n := metric(t, url, "nowhere_mirror_hash_failures_total", `mirror="`+h.URL+`"`); n == 0 {
						t.Errorf("no hash failures counted for %s", h.URL)
					}
				}
				if c.hard {
					out, _ := exec.Command(nowhereBin, "status", m.mnt).CombinedOutput()
					if !strings.Contains(lineWith(string(out), h.URL), "bad") {
						t.Errorf("%s (%s) not shown bad:\n%s", h.URL, c.mode, out)
					}
				}
				t.Logf("%s: read in %s; hostile mirror asked %s", c.mode, took.Round(time.Millisecond), h.Counts())
				m.stop()
			})

			t.Run("alone", func(t *testing.T) {
				var args []string
				out := filepath.Join(t.TempDir(), "out.img")
				switch c.aloneVerb {
				case "info":
					args = []string{"info", h.URL + "/images/test", "--key", publicKey}
				case "extract":
					args = []string{"extract", h.URL + "/images/test", out, "--key", publicKey, "--progress", "never", "--timeout", cmp.Or(c.timeout, "5s")}
				}
				start := time.Now()
				text, err := runEnv(t, 2*time.Minute, env, args...)
				took := time.Since(start)
				t.Logf("%s alone: %s %v in %s:\n%s", c.mode, c.aloneVerb, err, took.Round(time.Millisecond), text)
				if c.alone == "" {
					if err != nil {
						t.Fatalf("%s alone: %v\n%s", c.aloneVerb, err, text)
					}
					if c.aloneVerb == "extract" {
						b, err := os.ReadFile(out)
						if err != nil || sha256.Sum256(b) != fx.Want {
							t.Fatalf("extracted image differs (%v)", err)
						}
					}
					return
				}
				var exit *exec.ExitError
				if !errors.As(err, &exit) || exit.ExitCode() == 0 {
					t.Fatalf("%s alone: %v, want a non-zero exit:\n%s", c.aloneVerb, err, text)
				}
				lines := strings.Split(strings.TrimSpace(text), "\n")
				last := lines[len(lines)-1]
				if !strings.HasPrefix(last, "nowhere: ") || !expand(c.alone).MatchString(last) {
					t.Errorf("%s alone: last line %q, want it to match %q", c.aloneVerb, last, expand(c.alone))
				}
				// The error is its last line; lines before it (a read still failing, a broken
				// mirror list) are log lines that name the mirror too.
				for _, l := range lines {
					if !strings.HasPrefix(l, "nowhere: ") || !strings.Contains(l, h.URL) {
						t.Errorf("%s alone: line %q is not a message naming %s", c.aloneVerb, l, h.URL)
					}
				}
				if took > time.Minute {
					t.Errorf("%s alone took %s to fail", c.aloneVerb, took)
				}
			})
		})
	}
}

// TestHostileStaleMetadataFreshClient: a client that never saw a newer version accepts
// a stale, validly signed latest pointer (docs/security.md, "What this does not stop": a
// fresh client's first fetch), and remembers it; once it has seen version 2, the same
// mirror's version 1 is refused as a rollback.
func TestHostileStaleMetadataFreshClient(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	fx := makeHostileFixture(t, 1<<20, 70)
	h := fx.start(t, staleMetadata)
	_, good := serveStore(t, fx.Store, "127.0.0.1:0")
	xdg := t.TempDir()
	env := []string{"XDG_CACHE_HOME=" + xdg}
	out, err := runEnv(t, time.Minute, env, "info", h.URL+"/images/test", "--key", publicKey)
	if err != nil || !strings.Contains(out, "version:   1") {
		t.Fatalf("fresh client, stale mirror: %v, want version 1 accepted:\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(xdg, "nowhere", "trust-state")); err != nil {
		t.Fatalf("no rollback memory in $XDG_CACHE_HOME/nowhere: %v", err)
	}
	if out, err := runEnv(t, time.Minute, env, "info", good+"/images/test", "--key", publicKey); err != nil || !strings.Contains(out, "version:   2") {
		t.Fatalf("honest mirror: %v\n%s", err, out)
	}
	out, err = runEnv(t, time.Minute, env, "info", h.URL+"/images/test", "--key", publicKey)
	if err == nil || !strings.Contains(out, "older than version 2 already accepted (rollback") {
		t.Fatalf("stale mirror after version 2: %v, want a rollback refusal:\n%s", err, out)
	}
}

// mountEnv is mount with more environment for the process.
func mountEnv(t testing.TB, env []string, source string, args ...string) *mounted {
	t.Helper()
	mnt := t.TempDir()
	p := start(t, "nowhere mount", env, append([]string{nowhereBin, "mount", source, mnt, "--key", publicKey}, args...)...)
	t.Cleanup(func() { _ = syscall.Unmount(mnt, syscall.MNT_DETACH) }) // runs after the kill
	p.waitOutput(`mounted test version`, 90*time.Second)
	return &mounted{proc: p, mnt: mnt}
}

// runEnv runs the binary with more environment, bounded by limit, and returns its output.
func runEnv(t testing.TB, limit time.Duration, env []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, nowhereBin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Errorf("nowhere %s: still running after %s", strings.Join(args, " "), limit)
	}
	return string(out), err
}
