package image

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/pack"
	"github.com/nowhere-boot/nowhere/internal/store"
	"github.com/nowhere-boot/nowhere/internal/trust"
)

// signedStore packs the same image as debian into a new directory store, signed by key.
func signedStore(t *testing.T, key *trust.SecretKey, img []byte) (string, *store.Dir) {
	t.Helper()
	dir := t.TempDir()
	w, err := store.CreateDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	spec, _ := chunk.ParseSpec("fixed:64K")
	if _, err := pack.Run(context.Background(), bytes.NewReader(img), w, pack.Options{Name: "debian", Spec: spec, Signer: key}); err != nil {
		t.Fatal(err)
	}
	return dir, w
}

// TestLoadFailsOverPastLyingMirrors: of three mirrors, the first serves the image signed by
// another key, the second an index altered after signing; the load comes from the third,
// honest one, and the two liars are demoted hard, each named in the log. When every
// mirror lies, the error's first line says so and each mirror has a line of its own.
func TestLoadFailsOverPastLyingMirrors(t *testing.T) {
	publisher, _ := trust.GenerateKey()
	other, _ := trust.GenerateKey()
	img := make([]byte, 300<<10)
	rand.New(rand.NewSource(7)).Read(img)
	otherKey, s1 := signedStore(t, other, img)
	altered, s2 := signedStore(t, publisher, img)
	honest, s3 := signedStore(t, publisher, img)
	ixFile := filepath.Join(altered, "images/debian/1.index")
	b, _ := os.ReadFile(ixFile)
	b[len(b)/3] ^= 1
	os.WriteFile(ixFile, b, 0o644)

	var mu sync.Mutex
	var logged strings.Builder
	logf := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		logged.WriteString(strings.TrimSpace(strings.ReplaceAll(fmt.Sprintf(format, args...), "\n", " ")) + "\n")
	}
	set, err := store.NewMirrorSet([]store.Store{s1, s2, s3}, store.MirrorOptions{Log: logf, Spread: 1})
	if err != nil {
		t.Fatal(err)
	}
	v, _ := trust.NewVerifier(trust.Policy{Keys: []trust.PublicKey{publisher.Public()}})
	policy := store.Policy{Timeout: 2 * time.Second}
	ix, _, err := LoadVerified(context.Background(), set, Location{Store: "mirrors", Name: "debian"}, policy, v)
	if err != nil {
		t.Fatalf("with one honest mirror of three: %v", err)
	}
	if ix.Name != "debian" || ix.Version != 1 {
		t.Fatalf("loaded %s version %d", ix.Name, ix.Version)
	}
	log := logged.String()
	for _, liar := range []string{otherKey, altered} {
		if !strings.Contains(log, liar) || !strings.Contains(log, "failed verification") || !strings.Contains(log, "demoted hard") {
			t.Errorf("the liar %s was not demoted hard:\n%s", liar, log)
		}
	}
	// Each refusal names the file at the mirror that served it, not at the set ("first
	// mirror (+2 mirrors)"), which would name the first mirror whoever lied.
	for _, file := range []string{otherKey + "/images/debian/latest", altered + "/images/debian/1.index"} {
		if !strings.Contains(log, "failed verification: "+file+": ") {
			t.Errorf("no refusal names %s:\n%s", file, log)
		}
	}
	if strings.Contains(log, "mirrors)/") {
		t.Errorf("a refusal names the set instead of the mirror:\n%s", log)
	}
	if strings.Contains(log, honest+" served") {
		t.Errorf("the honest mirror was blamed:\n%s", log)
	}

	// Every mirror lies: a summary line, then one line per mirror.
	liars, err := store.NewMirrorSet([]store.Store{s1, s2}, store.MirrorOptions{Log: logf})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = LoadVerified(context.Background(), liars, Location{Store: "mirrors", Name: "debian"}, policy, v)
	if err == nil {
		t.Fatal("two lying mirrors: loaded")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], "no mirror served") || !strings.Contains(lines[0], "(2 tried)") {
		t.Fatalf("two lying mirrors: %d lines, want a summary and one line per mirror:\n%v", len(lines), err)
	}
	for i, m := range []string{otherKey, altered} {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("the error does not name mirror %d (%s):\n%v", i+1, m, err)
		}
	}
}

// stallingStore holds every file request until the caller gives up: a mirror that
// answered its probe and then holds latest.
type stallingStore struct{ *store.Dir }

func (s stallingStore) String() string { return "http://staller.invalid" }

func (s stallingStore) File(ctx context.Context, name string, max int64) ([]byte, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestLoadMovesOnPastStalledMirror: the first mirror holds the latest pointer; after the
// load's deadline the next mirror is asked and serves it, the staller is demoted (not as
// a liar), and the load ends within about one deadline.
func TestLoadMovesOnPastStalledMirror(t *testing.T) {
	publisher, _ := trust.GenerateKey()
	img := make([]byte, 200<<10)
	rand.New(rand.NewSource(9)).Read(img)
	_, s1 := signedStore(t, publisher, img)
	_, s2 := signedStore(t, publisher, img)
	var mu sync.Mutex
	var logged strings.Builder
	logf := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(&logged, format+"\n", args...)
	}
	set, err := store.NewMirrorSet([]store.Store{stallingStore{s1}, s2}, store.MirrorOptions{Log: logf, Spread: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	v, _ := trust.NewVerifier(trust.Policy{Keys: []trust.PublicKey{publisher.Public()}})
	policy := store.Policy{Timeout: time.Second}
	start := time.Now()
	ix, _, err := LoadVerified(context.Background(), set, Location{Store: "mirrors", Name: "debian"}, policy, v)
	if err != nil {
		t.Fatalf("with a staller first and an honest mirror second: %v", err)
	}
	if ix.Name != "debian" || ix.Version != 1 {
		t.Fatalf("loaded %s version %d", ix.Name, ix.Version)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("the load took %s past a 1 s deadline per mirror", took)
	}
	mu.Lock()
	log := logged.String()
	mu.Unlock()
	if !strings.Contains(log, "http://staller.invalid failed") || strings.Contains(log, "demoted hard") {
		t.Errorf("the staller was not demoted as a failed mirror:\n%s", log)
	}
	// Its background re-probe stalls too: Close cancels it instead of waiting it out (5 s).
	time.Sleep(time.Second)
	closing := time.Now()
	set.Close()
	if d := time.Since(closing); d > 3*time.Second {
		t.Errorf("Close took %s, waiting out a stalled probe", d.Round(time.Millisecond))
	}

	// Alone, the staller's error names it, the file it held and what happened.
	alone, err := store.NewMirrorSet([]store.Store{stallingStore{s1}}, store.MirrorOptions{Log: logf})
	if err != nil {
		t.Fatal(err)
	}
	defer alone.Close()
	_, _, err = LoadVerified(context.Background(), alone, Location{Store: "mirrors", Name: "debian"}, policy, v)
	if err == nil || !strings.Contains(err.Error(), "http://staller.invalid/images/debian/latest: no complete response within ") {
		t.Fatalf("stallers only: %v, want an error naming the mirror's file and the stall", err)
	}
}
