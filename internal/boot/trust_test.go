package boot

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nowhere-boot/nowhere/internal/boot/cmdline"
	"github.com/nowhere-boot/nowhere/internal/trust"
)

// Two keys made by nowhere keygen: one baked into an initramfs, one on a command line.
const (
	bakedPub = "untrusted comment: minisign public key: DD8C4C2C5B6914A4\nRWSkFGlbLEyM3S0mochr89AkGTTdLUAvL69uA4V7UzJMYfosEw7I4v2j\n"
	lineKey  = "RWQngv8+ui5l+7DkJ1lNS8NSLDUdkCMvjyEbTMue4qMIVOS00lJNxIIz"
)

func parse(t *testing.T, line string) cmdline.Config {
	t.Helper()
	c, err := cmdline.Parse(cmdline.Layer{Name: "kernel command line", Text: line})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The keys /init trusts are the initramfs' and the command line's together; without
// any, only nowhere.insecure boots, and it says so loudly.
func TestTrustedKeysFromInitramfsAndCommandLine(t *testing.T) {
	dir := t.TempDir()
	baked := filepath.Join(dir, "trusted.pub")
	if err := os.WriteFile(baked, []byte(bakedPub), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "none.pub")
	for _, tc := range []struct {
		name, line, file string
		want             []string // key IDs, or the summary's error
		summary          string
	}{
		{"baked only", "", baked, []string{"DD8C4C2C5B6914A4"}, "trusting publisher keys DD8C4C2C5B6914A4"},
		{"command line only", "nowhere.key=" + lineKey, missing, []string{keyIDOf(t, lineKey)}, "trusting publisher keys " + keyIDOf(t, lineKey)},
		{"both, deduplicated", "nowhere.key=" + lineKey + " nowhere.key=RWSkFGlbLEyM3S0mochr89AkGTTdLUAvL69uA4V7UzJMYfosEw7I4v2j", baked,
			[]string{"DD8C4C2C5B6914A4", keyIDOf(t, lineKey)}, "trusting publisher keys DD8C4C2C5B6914A4, " + keyIDOf(t, lineKey)},
		{"none, insecure", "nowhere.insecure", missing, nil, "WARNING: nowhere.insecure"},
		{"none", "", missing, nil, "no trusted key"},
	} {
		cfg := parse(t, tc.line)
		keys, err := trustedKeys(cfg, tc.file)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		var ids []string
		for _, k := range keys {
			ids = append(ids, k.ID())
		}
		if strings.Join(ids, " ") != strings.Join(tc.want, " ") {
			t.Errorf("%s: keys %v, want %v", tc.name, ids, tc.want)
		}
		summary, err := trustSummary(cfg, keys)
		if err != nil {
			summary = err.Error()
		}
		if !strings.HasPrefix(summary, tc.summary) {
			t.Errorf("%s: %q, want it to start with %q", tc.name, summary, tc.summary)
		}
	}
	if _, err := trustSummary(parse(t, ""), nil); err == nil || !strings.Contains(err.Error(), "nowhere.key=") ||
		!strings.Contains(err.Error(), "nowhere initramfs --key") {
		t.Errorf("no key: %v, want the ways to give one", err)
	}
}

// A baked key file that is there but broken stops the boot with the file's name.
func TestBrokenBakedKeyFile(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "trusted.pub")
	if err := os.WriteFile(bad, []byte("RWSnot-a-key\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := trustedKeys(parse(t, ""), bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("broken key file: %v, want an error naming %s", err, bad)
	}
}

func keyIDOf(t *testing.T, s string) string {
	t.Helper()
	k, err := trust.ParsePublicKey([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return k.ID()
}
