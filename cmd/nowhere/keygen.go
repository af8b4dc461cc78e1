package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/nowhere-boot/nowhere/internal/trust"
)

type keygenOptions struct {
	secret     string
	public     string
	password   string
	noPassword bool
	force      bool
}

func newKeygenCommand() *cobra.Command {
	var o keygenOptions
	cmd := &cobra.Command{
		Use:   "keygen",
		Short: "Make an Ed25519 key pair for signing images (minisign's file formats)",
		Long: `Keygen makes a key pair for signing images: the secret key signs with
nowhere pack --sign-key; the public key is what clients trust (mount, extract, info --key,
or /etc/nowhere/trusted.pub). The files are minisign's: minisign -S can sign with the
secret key, minisign -V checks with the public key, and keys made by minisign -G work
with nowhere. The secret key is encrypted with a password (scrypt, as minisign does)
unless --no-password is given.`,
		Example: `  nowhere keygen --secret publisher.key --public publisher.pub
  nowhere keygen --secret ci.key --public ci.pub --password-file /run/secrets/keypw
  nowhere keygen --secret test.key --public test.pub --no-password`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runKeygen(o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.secret, "secret", "nowhere.key", "write the secret key to this file")
	f.StringVar(&o.public, "public", "nowhere.pub", "write the public key to this file")
	f.StringVar(&o.password, "password-file", "", "encrypt the secret key with the first line of this file (default: ask on the terminal)")
	f.BoolVar(&o.noPassword, "no-password", false, "leave the secret key unencrypted (like minisign -W)")
	f.BoolVar(&o.force, "force", false, "replace existing key files")
	return cmd
}

func runKeygen(o keygenOptions) error {
	if o.noPassword && o.password != "" {
		return errors.New("keygen: --no-password and --password-file contradict each other")
	}
	if !o.force {
		for _, p := range []string{o.secret, o.public} {
			if _, err := os.Lstat(p); err == nil {
				return fmt.Errorf("keygen: %s exists (give --force to replace it)", p)
			}
		}
	}
	password, err := keygenPassword(o)
	if err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	k, err := trust.GenerateKey()
	if err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	sec, err := k.MarshalText(password)
	if err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	if err := writeFileAtomic(o.secret, sec, 0o600); err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	if err := writeFileAtomic(o.public, k.Public().MarshalText(), 0o644); err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	enc := "encrypted with your password"
	if password == "" {
		enc = "NOT encrypted: protect the file"
	}
	fmt.Printf("key %s\n  secret key: %s (%s; keep it secret)\n  public key: %s\n", k.ID(), o.secret, enc, o.public)
	fmt.Printf("sign:   nowhere pack IMAGE --store DIR --name NAME --sign-key %s\n", o.secret)
	fmt.Printf("trust:  nowhere mount URL/images/NAME MNT --key %s   (or --key %s)\n", o.public, k.Public())
	fmt.Printf("check:  minisign -Vm STORE/images/NAME/VERSION.index -P %s\n", k.Public())
	return nil
}

func keygenPassword(o keygenOptions) (string, error) {
	switch {
	case o.noPassword:
		return "", nil
	case o.password != "":
		return readPassword(o.password, "")
	case !term.IsTerminal(int(os.Stdin.Fd())):
		return "", errors.New("no terminal to ask for a password on: give --password-file FILE, or --no-password for an unencrypted key")
	}
	pw, err := readPassword("", "password for the new secret key (empty for none): ")
	if err != nil || pw == "" {
		return "", err
	}
	again, err := readPassword("", "the same password again: ")
	if err != nil {
		return "", err
	}
	if again != pw {
		return "", errors.New("the passwords differ")
	}
	return pw, nil
}

// writeFileAtomic writes a whole file under its final name or nothing (temp + rename).
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp-"+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("%s: %w", path, unwrapPathError(err))
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("%s: %w", path, unwrapPathError(err))
	}
	return nil
}
