package catalog

import (
	"strings"
	"testing"
	"time"
)

func TestVersionsRoundTrip(t *testing.T) {
	vs := &Versions{Name: "debian"}
	created := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	vs.Put(Version{Version: 2, Size: 200, Created: created, Chunks: 3, Unique: 2, Stored: 99, Chunking: "cdc:16K:64K:256K:4096", Signed: true, SHA256: [32]byte{2}})
	vs.Put(Version{Version: 1, Size: 100, Created: created, Expires: created.Add(time.Hour), Chunking: "fixed:64K", SHA256: [32]byte{1}})
	got, err := ParseVersions(vs.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "debian" || len(got.Versions) != 2 || got.Versions[0] != vs.Versions[0] || got.Versions[1] != vs.Versions[1] {
		t.Fatalf("round trip:\n%+v\n%+v", got, vs)
	}
	if d, ok := got.Find(2); !ok || d.Stored != 99 || !d.Signed {
		t.Fatalf("Find(2) = %+v, %v", d, ok)
	}
	// Later formats may add keys and lines.
	extra := strings.Replace(string(vs.Encode()), "sha256", "future 7 sha256", 1) + "something new\n"
	if _, err := ParseVersions([]byte(extra)); err != nil {
		t.Fatalf("unknown keys and lines must be ignored: %v", err)
	}
}

func TestVersionsRejectsBadInput(t *testing.T) {
	good := "nowhere-versions 1\nname debian\n"
	line := "version 1 size 5 sha256 " + strings.Repeat("ab", 32) + "\n"
	for _, c := range []struct{ name, text, want string }{
		{"magic", "nowhere-versions 2\nname x\n", "does not start"},
		{"no name", "nowhere-versions 1\n" + line, "no name"},
		{"bad name", "nowhere-versions 1\nname ../x\n", "line 2"},
		{"odd fields", good + "version 1 size\n", "line 3"},
		{"no sha", good + "version 1 size 5\n", "missing"},
		{"short sha", good + "version 1 size 5 sha256 abcd\n", "sha256"},
		{"version 0", good + "version 0 size 5 sha256 " + strings.Repeat("ab", 32) + "\n", "bad version"},
		{"not sorted", good + line + line, "does not follow"},
		{"bad time", good + "version 1 size 5 created yesterday sha256 " + strings.Repeat("ab", 32) + "\n", "created"},
		{"huge", good + strings.Repeat("#", MaxVersions), "larger"},
	} {
		_, err := ParseVersions([]byte(c.text))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one mentioning %q", c.name, err, c.want)
		}
	}
}

func TestNames(t *testing.T) {
	got, err := ParseNames(EncodeNames([]string{"b", "a", "b"}))
	if err != nil || strings.Join(got, ",") != "a,b" {
		t.Fatalf("names: %v, %v", got, err)
	}
	for _, bad := range []string{"", "nowhere-catalog 2\n", "nowhere-catalog 1\nimage a b\n", "nowhere-catalog 1\nimage .x\n"} {
		if _, err := ParseNames([]byte(bad)); err == nil {
			t.Errorf("ParseNames(%q) accepted", bad)
		}
	}
}
