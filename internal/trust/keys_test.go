package trust

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadKeysFromFilesAndStrings(t *testing.T) {
	a, b, c := seededKey(t, "a"), seededKey(t, "b"), seededKey(t, "c")
	dir := t.TempDir()
	one := filepath.Join(dir, "a.pub")
	if err := os.WriteFile(one, a.Public().MarshalText(), 0o644); err != nil {
		t.Fatal(err)
	}
	many := filepath.Join(dir, "trusted.pub")
	content := "# the fleet's keys\n" + string(b.Public().MarshalText()) + "\n" + c.Public().String() + "\n" + a.Public().String() + "\n"
	if err := os.WriteFile(many, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	keys, err := LoadKeys([]string{one, many, c.Public().String()})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, k := range keys {
		ids = append(ids, k.ID())
	}
	if want := []string{a.ID(), b.ID(), c.ID()}; strings.Join(ids, ",") != strings.Join(want, ",") {
		t.Fatalf("keys %v, want %v (duplicates dropped, order kept)", ids, want)
	}
}

func TestLoadKeysErrorsNameTheSpec(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pub")
	os.WriteFile(bad, []byte("untrusted comment: x\nnot-a-key\n"), 0o644)
	secret := filepath.Join(dir, "secret.key")
	text, _ := seededKey(t, "s").MarshalText("")
	os.WriteFile(secret, text, 0o600)
	for spec, want := range map[string]string{
		bad:                  "key file " + bad + ": line 2: not a minisign public key",
		secret:               "key file " + secret + ": line 2: this is a secret key; clients need the public key",
		"RWQnotreallyakey":   `key "RWQnotreallyakey": no such file, and not a minisign public key string`,
		filepath.Join(dir):   "key file " + dir + ": is a directory",
		dir + "/missing.pub": "no such file",
	} {
		_, err := LoadKeys([]string{spec})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("LoadKeys(%q): got %v, want %q", spec, err, want)
		}
	}
}

func TestSecretKeyFileRoundTrip(t *testing.T) {
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	text, err := k.MarshalText("")
	if err != nil {
		t.Fatal(err)
	}
	if SecretKeyEncrypted(text) {
		t.Fatal("a key without password reads as encrypted")
	}
	back, err := ParseSecretKey(text, nil)
	if err != nil || back.ID() != k.ID() || back.Public().String() != k.Public().String() {
		t.Fatalf("round trip: %v", err)
	}
}

// Encrypted keys (scrypt with minisign's parameters: a GiB and seconds per try) are
// tested once, through the CLI and against the minisign tool, in cmd/nowhere.

func TestDamagedSecretKeyRefused(t *testing.T) {
	k := seededKey(t, "damaged")
	text, _ := k.MarshalText("")
	// Flip a character in the base64 near the end: the public half of the key.
	lines := strings.Split(string(text), "\n")
	b := []byte(lines[1])
	i := len(b) - 50
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	lines[1] = string(b)
	if _, err := ParseSecretKey([]byte(strings.Join(lines, "\n")), nil); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("got %v", err)
	}
}
