package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/nowhere-boot/nowhere/internal/store"
	"github.com/nowhere-boot/nowhere/internal/trust"
	"github.com/nowhere-boot/nowhere/internal/units"
)

// trustOptions are the flags of every verb that reads an image from a store it does not
// own (mount, extract, info): which keys to trust, where to remember accepted versions,
// and how to talk to https mirrors and bound slow ones.
type trustOptions struct {
	keys        []string
	insecure    bool
	state       string
	ca          string
	httpTimeout time.Duration
	minRate     string
}

func (o *trustOptions) addFlags(f *pflag.FlagSet) {
	f.StringArrayVar(&o.keys, "key", nil, "trust this publisher key: a minisign public key file or its base64 string (repeatable; default "+trust.DefaultKeyFile+" if present)")
	f.BoolVar(&o.insecure, "insecure", false, "accept unsigned or unverifiable images (DANGEROUS: whoever controls the store or the network picks what you run)")
	f.StringVar(&o.state, "state", "", "file remembering the highest version accepted per image (rollback protection; default: in --cache, else ~/.cache/nowhere)")
	f.StringVar(&o.ca, "ca", "", "also trust the CA certificate(s) in this PEM file for https stores")
	durationVar(f, &o.httpTimeout, "http-timeout", store.DefaultRequestTimeout, "abandon one HTTP request after this long (0: no limit)")
	sizeVar(f, &o.minRate, "min-rate", "1K", "abandon an HTTP response arriving slower than this many bytes per second, averaged over 10s (0: no minimum)")
}

// warnInsecure prints the loud line that --insecure earns, before anything is fetched.
func (o *trustOptions) warnInsecure() {
	if o.insecure {
		logf("WARNING: --insecure: signatures, expiry and rollback are NOT enforced; whoever controls the store or the network decides what you get")
	}
}

// verifier builds the trust policy. The rollback state lives in cacheDir when there is one.
func (o *trustOptions) verifier(cacheDir string) (*trust.Verifier, error) {
	specs := o.keys
	if len(specs) == 0 {
		if _, err := os.Stat(trust.DefaultKeyFile); err == nil {
			specs = []string{trust.DefaultKeyFile}
		}
	}
	keys, err := trust.LoadKeys(specs)
	if err != nil {
		return nil, fmt.Errorf("--key: %w", err)
	}
	path := o.state
	if path == "" {
		if path, err = trust.DefaultStatePath(cacheDir); err != nil {
			return nil, err
		}
	}
	return trust.NewVerifier(trust.Policy{
		Keys: keys, Insecure: o.insecure, State: trust.OpenState(path), Warn: logf,
	})
}

// storeOptions are the options of http(s) stores.
func (o *trustOptions) storeOptions() (store.HTTPOptions, error) {
	opt := store.HTTPOptions{RequestTimeout: o.httpTimeout, MinRate: -1}
	if o.httpTimeout == 0 {
		opt.RequestTimeout = -1
	}
	rate, err := units.ParseBytes(o.minRate)
	if err != nil {
		return opt, fmt.Errorf("--min-rate: %w", err)
	}
	if rate > 0 {
		opt.MinRate = rate
	}
	if o.ca != "" {
		pem, err := os.ReadFile(o.ca)
		if err != nil {
			return opt, fmt.Errorf("--ca %s: %w", o.ca, unwrapPathError(err))
		}
		if opt.Client, err = store.NewClient(pem); err != nil {
			return opt, fmt.Errorf("--ca %s: %w", o.ca, err)
		}
	}
	return opt, nil
}

// signedBy describes an index's signature for humans.
func signedBy(sig []byte, v *trust.Verifier) string {
	if len(sig) == 0 {
		return "no"
	}
	id, err := trust.SignatureKeyID(sig)
	if err != nil {
		return "unreadable signature"
	}
	if v.Insecure() {
		return "by key " + id + " (NOT verified: --insecure)"
	}
	return "by key " + id + ", verified"
}

// readPassword returns the password for a secret key: the first line of file, or typed
// on the terminal.
func readPassword(file, prompt string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("--password-file %s: %w", file, unwrapPathError(err))
		}
		line, _, _ := strings.Cut(string(b), "\n")
		line = strings.TrimSuffix(line, "\r")
		if line == "" {
			return "", fmt.Errorf("--password-file %s: empty first line", file)
		}
		return line, nil
	}
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return "", errors.New("no terminal to ask for the password on: give --password-file FILE")
	}
	fmt.Fprint(os.Stderr, prompt)
	b, err := term.ReadPassword(fd)
	fmt.Fprintln(os.Stderr)
	return string(b), err
}
