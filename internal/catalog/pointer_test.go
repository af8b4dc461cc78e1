package catalog_test

import (
	"bytes"
	"context"
	"math/rand"
	"path/filepath"
	"testing"

	"aead.dev/minisign"

	"github.com/nowhere-boot/nowhere/internal/catalog"
	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/pack"
	"github.com/nowhere-boot/nowhere/internal/store"
	"github.com/nowhere-boot/nowhere/internal/trust"
)

// TestReadPointerIgnoresDetachedSignature: the latest pointer carries its own signature,
// and pack writes latest.minisig (for minisign -V) just before the pointer, so an
// outside observer can see the new latest.minisig beside the old pointer for a moment.
// A reader must never depend on that pair: ReadPointer verifies the pointer by its
// embedded signature whether latest.minisig is stale (another version's), garbage or
// missing, and refuses a pointer without an embedded signature even when a valid
// detached signature of it lies beside it.
func TestReadPointerIgnoresDetachedSignature(t *testing.T) {
	ctx := context.Background()
	d, err := store.CreateDir(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	key, err := trust.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	spec, _ := chunk.ParseSpec("fixed:64K")
	ptr := store.LatestPath("os")
	detachedPath := ptr + pack.SignatureSuffix
	var stale []byte // version 1's latest.minisig
	for v := int64(1); v <= 2; v++ {
		img := make([]byte, 128<<10)
		rand.New(rand.NewSource(v)).Read(img)
		if _, err := pack.Run(ctx, bytes.NewReader(img), d, pack.Options{Name: "os", Spec: spec, Signer: key}); err != nil {
			t.Fatal(err)
		}
		if v == 1 {
			if stale, err = d.File(ctx, detachedPath, 1<<16); err != nil {
				t.Fatal(err)
			}
		}
	}
	latest, err := d.File(ctx, ptr, 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	var pub minisign.PublicKey
	if err := pub.UnmarshalText(bytes.TrimSpace(key.Public().MarshalText())); err != nil {
		t.Fatal(err)
	}
	if minisign.Verify(pub, latest, stale) {
		t.Fatal("version 1's latest.minisig verifies version 2's pointer: the test proves nothing")
	}
	v, err := trust.NewVerifier(trust.Policy{Keys: []trust.PublicKey{key.Public()}})
	if err != nil {
		t.Fatal(err)
	}
	read := func(what string) {
		t.Helper()
		_, p, err := catalog.ReadPointer(ctx, d, ptr, "os", v)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if p == nil || p.Version != 2 {
			t.Fatalf("%s: read pointer %+v, want version 2", what, p)
		}
	}
	read("latest.minisig as pack left it")
	if err := d.PutFile(ctx, detachedPath, stale); err != nil {
		t.Fatal(err)
	}
	read("latest.minisig of version 1")
	if err := d.PutFile(ctx, detachedPath, []byte("not a signature\n")); err != nil {
		t.Fatal(err)
	}
	read("latest.minisig garbage")
	if err := d.RemoveFile(ctx, detachedPath); err != nil {
		t.Fatal(err)
	}
	read("latest.minisig missing")

	// The other way round: a pointer stripped of its embedded signature is refused, even
	// though a detached signature that minisign -V accepts lies beside it.
	text, _ := trust.SplitPointer(latest)
	detached := key.Sign(text, "nowhere latest os version 2")
	if !minisign.Verify(pub, text, detached) {
		t.Fatal("the detached signature made for the test does not verify")
	}
	if err := d.PutFile(ctx, detachedPath, detached); err != nil {
		t.Fatal(err)
	}
	if err := d.PutFile(ctx, ptr, text); err != nil {
		t.Fatal(err)
	}
	if _, p, err := catalog.ReadPointer(ctx, d, ptr, "os", v); err == nil {
		t.Fatalf("a pointer without its embedded signature was accepted (version %d) on the strength of latest.minisig", p.Version)
	}
}
