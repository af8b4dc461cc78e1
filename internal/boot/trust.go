package boot

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/nowhere-boot/nowhere/internal/boot/cmdline"
	"github.com/nowhere-boot/nowhere/internal/trust"
)

// memStateDir keeps the rollback memory when there is no cache disk: in the initramfs
// root, which is memory, out of the new system's sight, and gone at power-off.
const memStateDir = "/.nowhere-trust"

// errNoKey is why a boot without any trusted key stops: nothing could be verified, and
// waiting does not change that.
var errNoKey = errors.New("no trusted key to verify the image with: give nowhere.key=PUBLIC_KEY (the base64 line of the publisher's .pub file), " +
	"bake one into the initramfs with `nowhere initramfs --key FILE`, or boot unsigned images with nowhere.insecure (unsafe)")

// trustedKeys returns the publisher keys this boot trusts: those baked into the
// initramfs (keyFile, absent when none were) and those on the command line. A key file
// that is there but broken fails: it cannot be fixed by waiting.
func trustedKeys(cfg cmdline.Config, keyFile string) ([]trust.PublicKey, error) {
	var keys []trust.PublicKey
	if _, err := os.Stat(keyFile); err == nil {
		if keys, err = trust.LoadKeys([]string{keyFile}); err != nil {
			return nil, fmt.Errorf("trusted keys: %w", err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("trusted keys %s: %v", keyFile, err)
	}
	for _, s := range cfg.Keys { // validated by cmdline: base64 keys, never paths
		k, err := trust.ParsePublicKey([]byte(s))
		if err != nil {
			return nil, fmt.Errorf("nowhere.key=%s: %w", s, err)
		}
		if !slices.ContainsFunc(keys, func(have trust.PublicKey) bool { return have.String() == k.String() }) {
			keys = append(keys, k)
		}
	}
	return keys, nil
}

// trustSummary is the console line about what the boot will accept, or the error that
// stops it.
func trustSummary(cfg cmdline.Config, keys []trust.PublicKey) (string, error) {
	if cfg.Insecure {
		return "WARNING: nowhere.insecure: the image's signature, expiry and version are NOT enforced: " +
			"whoever controls the network or a mirror decides what this machine runs", nil
	}
	if len(keys) == 0 {
		return "", errNoKey
	}
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = k.ID()
	}
	return "trusting publisher keys " + strings.Join(ids, ", "), nil
}
