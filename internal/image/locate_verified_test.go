package image

import (
	"bytes"
	"context"
	"errors"
	"math/rand"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/pack"
	"github.com/nowhere-boot/nowhere/internal/store"
	"github.com/nowhere-boot/nowhere/internal/trust"
)

// LoadVerified is the seam every client (CLI, boot) opens images through: a signed store
// loads; the verifier's refusal comes back naming the file; Load alone reads signed
// stores too (tools that inspect their own store).
func TestLoadVerifiedWithTrustVerifier(t *testing.T) {
	dir := t.TempDir()
	w, err := store.CreateDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	publisher, _ := trust.GenerateKey()
	other, _ := trust.GenerateKey()
	spec, _ := chunk.ParseSpec("fixed:64K")
	img := make([]byte, 300<<10)
	rand.New(rand.NewSource(1)).Read(img)
	if _, err := pack.Run(context.Background(), bytes.NewReader(img), w, pack.Options{Name: "debian", Spec: spec, Signer: publisher}); err != nil {
		t.Fatal(err)
	}
	loc := Location{Store: dir, Name: "debian"}
	policy := store.Policy{Timeout: time.Second}

	v, _ := trust.NewVerifier(trust.Policy{Keys: []trust.PublicKey{publisher.Public()},
		State: trust.OpenState(filepath.Join(t.TempDir(), trust.StateFileName))})
	ix, file, err := LoadVerified(context.Background(), w, loc, policy, v)
	if err != nil {
		t.Fatal(err)
	}
	if ix.Name != "debian" || ix.Version != 1 || len(ix.Signature) == 0 || len(file) == 0 {
		t.Fatalf("loaded %s version %d, signature %d bytes", ix.Name, ix.Version, len(ix.Signature))
	}

	wrong, _ := trust.NewVerifier(trust.Policy{Keys: []trust.PublicKey{other.Public()}})
	_, _, err = LoadVerified(context.Background(), w, loc, policy, wrong)
	if !errors.Is(err, trust.ErrUntrustedKey) || !strings.Contains(err.Error(), dir+"/images/debian/latest: refused:") {
		t.Fatalf("another key: %v", err)
	}
	loc.Version = 1
	_, _, err = LoadVerified(context.Background(), w, loc, policy, wrong)
	if !errors.Is(err, trust.ErrUntrustedKey) || !strings.Contains(err.Error(), dir+"/images/debian/1.index: refused:") {
		t.Fatalf("another key, version named: %v", err)
	}

	loc.Version = 0
	if ix, _, err := Load(context.Background(), w, loc, policy); err != nil || ix.Version != 1 {
		t.Fatalf("unverified Load of a signed store: %v", err)
	}
}
