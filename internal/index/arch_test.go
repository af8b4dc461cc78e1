package index

import (
	"bytes"
	"strings"
	"testing"
)

func TestArchRoundTrip(t *testing.T) {
	for _, arch := range []string{"", "amd64", "arm64"} {
		ix := sampleIndex(20)
		ix.Arch = arch
		b := mustEncode(t, ix)
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("%q: %v", arch, err)
		}
		if got.Arch != arch {
			t.Fatalf("arch %q decoded as %q", arch, got.Arch)
		}
		// The encoding is the one docs/format.md describes.
		if !bytes.Equal(decompress(t, b[24:24+len(b)-28-len(ix.Signature)])[16:16+len(headerPayload(ix))], headerPayload(ix)) {
			t.Fatalf("%q: header differs from the documented layout", arch)
		}
	}
}

// An index without the arch field (every index written before it) reads as any, and one
// with no arch encodes byte for byte as before.
func TestArchOldIndex(t *testing.T) {
	ix := sampleIndex(10)
	old := build([]rawSection{{1, 1, headerPayload(ix)}, {2, 1, chunksPayload(uint64(len(ix.Entries)), ix.Entries)}})
	got, err := Decode(old)
	if err != nil {
		t.Fatal(err)
	}
	if got.Arch != "" || got.ArchOrAny() != "any" {
		t.Fatalf("old index: arch %q", got.Arch)
	}
}

func TestArchRejects(t *testing.T) {
	ix := sampleIndex(5)
	ix.Arch = "ARM 64"
	if _, err := Encode(ix); err == nil {
		t.Fatal("bad arch encoded")
	}
	ix.Arch = "arm64"
	h := headerPayload(ix)
	h[len(h)-len("arm64")-1] = 9 // declares more bytes than present
	f := build([]rawSection{{1, 1, h}, {2, 1, chunksPayload(uint64(len(ix.Entries)), ix.Entries)}})
	if _, err := Decode(f); err == nil || !strings.Contains(err.Error(), "architecture") {
		t.Fatalf("truncated arch: %v", err)
	}
}

func TestCheckArch(t *testing.T) {
	ix := &Index{Name: "debian", Arch: "arm64"}
	if err := ix.CheckArch("amd64"); err == nil || err.Error() != "image debian is arm64, this machine is amd64" {
		t.Fatalf("arm64 on amd64: %v", err)
	}
	if err := ix.CheckArch("arm64"); err != nil {
		t.Fatal(err)
	}
	ix.Arch = ""
	if err := ix.CheckArch("amd64"); err != nil {
		t.Fatalf("any: %v", err)
	}
}
