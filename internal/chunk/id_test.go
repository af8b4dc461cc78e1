package chunk

import (
	"bytes"
	"crypto/sha256"
	"strings"
	"testing"
)

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

func TestID(t *testing.T) {
	data := []byte("hello, nowhere")
	id := Sum(data)
	if id != ID(sha256.Sum256(data)) {
		t.Fatal("Sum is not SHA-256")
	}
	s := id.String()
	if len(s) != 64 || strings.ToLower(s) != s {
		t.Fatalf("String() = %q, want 64 lower-case hex digits", s)
	}
	back, err := ParseID(s)
	if err != nil || back != id {
		t.Fatalf("ParseID(String()) = %v, %v", back, err)
	}
	if up, err := ParseID(strings.ToUpper(s)); err != nil || up != id {
		t.Fatalf("ParseID of upper case: %v, %v", up, err)
	}
	for _, bad := range []string{"", s[:63], s + "0", "g" + s[1:], s[:62] + "  "} {
		if _, err := ParseID(bad); err == nil {
			t.Errorf("ParseID(%q) accepted", bad)
		}
	}
	if id.IsZero() || !(ID{}).IsZero() {
		t.Fatal("IsZero wrong")
	}
}
