package index

import (
	"bytes"
	"crypto/sha256"
	"strings"
	"testing"
)

func TestPointerRoundTrip(t *testing.T) {
	ix := sampleIndex(5)
	file := mustEncode(t, ix)
	p := NewPointer(ix, file)
	if p.Name != ix.Name || p.Version != ix.Version || p.SHA256 != sha256.Sum256(file) {
		t.Fatalf("NewPointer = %+v", p)
	}
	text := p.Encode()
	want := "nowhere-latest 1\nname debian-12.img\nversion 42\nsha256 " + hexOf(sha256.Sum256(file)) + "\n"
	if string(text) != want {
		t.Fatalf("pointer text:\n%s\nwant:\n%s", text, want)
	}
	got, err := ParsePointer(text)
	if err != nil || got != p {
		t.Fatalf("ParsePointer(Encode()) = %+v, %v", got, err)
	}
	if !p.Matches(file) {
		t.Fatal("pointer does not match its index")
	}
	other := mutate(file, func(b []byte) []byte { b[len(b)/2] ^= 1; return b })
	if p.Matches(other) || p.Matches(nil) {
		t.Fatal("pointer matches a different file")
	}
}

func hexOf(b [32]byte) string {
	const digits = "0123456789abcdef"
	var s strings.Builder
	for _, c := range b {
		s.WriteByte(digits[c>>4])
		s.WriteByte(digits[c&15])
	}
	return s.String()
}

func TestParsePointerTolerates(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	cases := map[string]string{
		"unknown keys":     "nowhere-latest 1\nname a\nsigned-by someone\nversion 3\nsha256 " + sum + "\nexpires 2030\n",
		"no final newline": "nowhere-latest 1\nname a\nversion 3\nsha256 " + sum,
		"key order":        "nowhere-latest 1\nsha256 " + sum + "\nversion 3\nname a\n",
		"upper-case hex":   "nowhere-latest 1\nname a\nversion 3\nsha256 " + strings.ToUpper(sum) + "\n",
		"blank lines":      "nowhere-latest 1\n\nname a\n\nversion 3\nsha256 " + sum + "\n\n",
	}
	for name, text := range cases {
		p, err := ParsePointer([]byte(text))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if p.Name != "a" || p.Version != 3 || hexOf(p.SHA256) != sum {
			t.Errorf("%s: %+v", name, p)
		}
	}
}

func TestParsePointerRejects(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	good := "name a\nversion 3\nsha256 " + sum + "\n"
	cases := map[string]string{
		"empty":           "",
		"no magic":        good,
		"other magic":     "nowhere-latest 2\n" + good,
		"index file":      "nowhidx\x00\x01\x00",
		"no name":         "nowhere-latest 1\nversion 3\nsha256 " + sum + "\n",
		"no version":      "nowhere-latest 1\nname a\nsha256 " + sum + "\n",
		"no sha256":       "nowhere-latest 1\nname a\nversion 3\n",
		"bad version":     "nowhere-latest 1\nname a\nversion three\nsha256 " + sum + "\n",
		"negative":        "nowhere-latest 1\nname a\nversion -3\nsha256 " + sum + "\n",
		"version too big": "nowhere-latest 1\nname a\nversion 18446744073709551616\nsha256 " + sum + "\n",
		"short sha256":    "nowhere-latest 1\nname a\nversion 3\nsha256 " + sum[:62] + "\n",
		"long sha256":     "nowhere-latest 1\nname a\nversion 3\nsha256 " + sum + "00\n",
		"non-hex sha256":  "nowhere-latest 1\nname a\nversion 3\nsha256 " + strings.Repeat("zz", 32) + "\n",
		"bad name":        "nowhere-latest 1\nname ../etc\nversion 3\nsha256 " + sum + "\n",
		"name with space": "nowhere-latest 1\nname a b\nversion 3\nsha256 " + sum + "\n",
		"too large":       "nowhere-latest 1\n" + good + strings.Repeat("x", MaxPointer),
	}
	for name, text := range cases {
		if p, err := ParsePointer([]byte(text)); err == nil {
			t.Errorf("%s: accepted as %+v", name, p)
		} else if !strings.HasPrefix(err.Error(), "latest pointer: ") {
			t.Errorf("%s: error %q does not say it is about the latest pointer", name, err)
		}
	}
}

func TestPointerPinsTheIndex(t *testing.T) {
	a, b := sampleIndex(5), sampleIndex(6)
	fa, fb := mustEncode(t, a), mustEncode(t, b)
	p := NewPointer(a, fa)
	if !p.Matches(fa) || p.Matches(fb) {
		t.Fatal("a pointer must match exactly the index file it was made from")
	}
	// Re-signing the same index changes the file, so the pointer must be rewritten too.
	signed, _ := WithSignature(fa, []byte("sig"))
	if p.Matches(signed) || bytes.Equal(signed, fa) {
		t.Fatal("pointer matches the index after its signature changed")
	}
}
