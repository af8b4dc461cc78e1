// Package initramfs builds the archive the kernel unpacks before running /init: the static
// nowhere binary as /init, the kernel modules the boot needs (resolved with their
// dependencies), the defaults baked in as a command line, the publisher keys it trusts,
// and CA certificates for https mirrors. No shell and no busybox: /init does everything
// itself.
package initramfs

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/u-root/u-root/pkg/cpio"

	"github.com/nowhere-boot/nowhere/internal/boot/cmdline"
	"github.com/nowhere-boot/nowhere/internal/boot/kmod"
	"github.com/nowhere-boot/nowhere/internal/trust"
)

// Paths inside the initramfs that /init reads.
const (
	DefaultsFile = "/etc/nowhere/cmdline" // baked command line, overridden by the kernel's
	PlanFile     = kmod.PlanFile
	CACertsFile  = "/etc/ssl/certs/ca-certificates.crt"
	// TrustedKeysFile holds the publisher keys baked in (nowhere initramfs --key).
	TrustedKeysFile = trust.DefaultKeyFile
)

// Options say what goes into an initramfs.
type Options struct {
	Init     string // the static nowhere binary to run as /init
	Modules  string // a kernel's /lib/modules/VERSION ("" = no modules: everything built in)
	Load     []string
	Drivers  []string
	Required func(module string) bool // modules that must exist (those a person asked for)
	Defaults string                   // baked command line
	// TrustedKeys are the publisher keys the boot trusts, as a trusted-keys file
	// (minisign public keys; nil = none baked in).
	TrustedKeys []byte
	CACerts     string // PEM bundle for https ("" = none)
	Compress    string // gzip (default), zstd or none
}

// Summary is what went in.
type Summary struct {
	Kernel   string
	Modules  []string // module files, in load order
	Notes    []string // defaults skipped (built in, or absent from this kernel)
	Files    int
	Raw      int64 // archive size before compression
	Size     int64 // written size
	Compress string
}

// Write builds the initramfs into file atomically (a temporary file renamed over it).
func Write(file string, o Options) (Summary, error) {
	dir := filepath.Dir(file)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(file)+".*")
	if err != nil {
		return Summary{}, fmt.Errorf("output %s: %w", file, errors.Unwrap(err))
	}
	defer os.Remove(tmp.Name())
	sum, err := Build(tmp, o)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), file)
	}
	return sum, err
}

// Build writes the compressed archive to w.
func Build(w io.Writer, o Options) (Summary, error) {
	sum := Summary{Compress: o.Compress}
	if sum.Compress == "" {
		sum.Compress = "gzip"
	}
	a := &archive{}
	init, err := os.ReadFile(o.Init)
	if err != nil {
		return sum, fmt.Errorf("init binary: %w", err)
	}
	if err := checkStatic(o.Init, init); err != nil {
		return sum, err
	}
	for _, d := range []string{"/dev", "/proc", "/sys", "/run", "/tmp", "/etc/nowhere"} {
		a.dir(d)
	}
	a.add(cpio.CharDev("dev/console", 0o600, 5, 1)) // the kernel opens it for /init's stdio
	a.file("/init", init, 0o755)

	// Validate the baked defaults now: a bad value should fail the build, not a boot.
	if _, err := cmdline.Parse(cmdline.Layer{Name: "defaults", Text: o.Defaults}); err != nil {
		return sum, err
	}
	a.file(DefaultsFile, []byte(o.Defaults+"\n"), 0o644)

	if o.TrustedKeys != nil {
		if _, err := trust.ParsePublicKeys(o.TrustedKeys); err != nil {
			return sum, fmt.Errorf("trusted keys: %w", err)
		}
		a.file(TrustedKeysFile, o.TrustedKeys, 0o644)
	}

	if o.CACerts != "" {
		pem, err := os.ReadFile(o.CACerts)
		if err != nil {
			return sum, fmt.Errorf("CA certificates: %w", err)
		}
		if !bytes.Contains(pem, []byte("-----BEGIN CERTIFICATE-----")) {
			return sum, fmt.Errorf("CA certificates %s: no PEM certificate in it", o.CACerts)
		}
		a.file(CACertsFile, pem, 0o644)
	}

	if o.Modules != "" {
		if err := addModules(a, o, &sum); err != nil {
			return sum, err
		}
	}

	var raw bytes.Buffer
	rw := cpio.Newc.Writer(&raw)
	for _, r := range a.records {
		if err := rw.WriteRecord(cpio.MakeReproducible(r)); err != nil {
			return sum, fmt.Errorf("cpio %s: %w", r.Name, err)
		}
	}
	if err := cpio.WriteTrailer(rw); err != nil {
		return sum, err
	}
	sum.Files, sum.Raw = len(a.records), int64(raw.Len())

	cw := &countWriter{w: w}
	if err := compress(cw, raw.Bytes(), sum.Compress); err != nil {
		return sum, err
	}
	sum.Size = cw.n
	return sum, nil
}

func addModules(a *archive, o Options, sum *Summary) error {
	tree, err := kmod.OpenTree(o.Modules)
	if err != nil {
		return err
	}
	required := o.Required
	if required == nil {
		required = func(string) bool { return false }
	}
	sel, err := kmod.Select(tree, o.Load, o.Drivers, required)
	if err != nil {
		return err
	}
	base := "/lib/modules/" + tree.Version
	for _, f := range sel.Files {
		data, err := os.ReadFile(filepath.Join(tree.Dir, f))
		if err != nil {
			return fmt.Errorf("module: %w", err)
		}
		a.file(path.Join(base, f), data, 0o644)
	}
	a.file(base+"/modules.dep", sel.ModulesDep(tree), 0o644)
	a.file(base+"/modules.alias", sel.ModulesAlias(), 0o644)
	if b, err := os.ReadFile(filepath.Join(tree.Dir, "modules.builtin")); err == nil {
		a.file(base+"/modules.builtin", b, 0o644)
	}
	a.file(PlanFile, sel.Plan.Encode(), 0o644)
	sum.Kernel, sum.Modules, sum.Notes = tree.Version, sel.Files, sel.Notes
	return nil
}

// checkStatic refuses a binary the kernel cannot run as /init from an initramfs without
// a dynamic loader: it must be an x86-64 or arm64 ELF executable without PT_INTERP.
func checkStatic(name string, b []byte) error {
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("init binary %s: not an ELF executable", name)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("init binary %s is dynamically linked: build it with CGO_ENABLED=0 (make build)", name)
		}
	}
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return fmt.Errorf("init binary %s: ELF type %s is not an executable", name, f.Type)
	}
	return nil
}

func compress(w io.Writer, raw []byte, how string) error {
	switch how {
	case "none":
		_, err := w.Write(raw)
		return err
	case "gzip":
		zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
		if err != nil {
			return err
		}
		if _, err := zw.Write(raw); err != nil {
			return err
		}
		return zw.Close()
	case "zstd":
		// The kernel's decompressor needs no dictionary and accepts any window size;
		// a single frame with a checksum.
		zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedBestCompression), zstd.WithEncoderCRC(true))
		if err != nil {
			return err
		}
		if _, err := zw.Write(raw); err != nil {
			return err
		}
		return zw.Close()
	}
	return fmt.Errorf("compression %q: want gzip, zstd or none", how)
}

// archive collects records, creating parent directories once each, before their contents
// (the kernel does not create missing parents).
type archive struct {
	records []cpio.Record
	dirs    []string
	ino     uint64
}

func (a *archive) add(r cpio.Record) {
	a.ino++
	r.Ino, r.NLink = a.ino, 1
	if r.Mode&cpio.S_IFMT == cpio.S_IFDIR {
		r.NLink = 2
	}
	a.records = append(a.records, r)
}

func (a *archive) dir(p string) {
	p = strings.Trim(path.Clean(p), "/")
	if p == "" || p == "." || slices.Contains(a.dirs, p) {
		return
	}
	a.dir(path.Dir(p))
	a.dirs = append(a.dirs, p)
	a.add(cpio.Directory(p, 0o755))
}

func (a *archive) file(p string, data []byte, perm uint64) {
	a.dir(path.Dir(p))
	a.add(cpio.StaticRecord(data, cpio.Info{Name: strings.TrimPrefix(p, "/"), Mode: cpio.S_IFREG | perm}))
}

// List reads an uncompressed or compressed initramfs back and returns its paths, sorted
// (for tests and `nowhere initramfs --list`).
func List(r io.Reader) ([]string, error) {
	data, err := decompress(r)
	if err != nil {
		return nil, err
	}
	recs, err := cpio.ReadAllRecords(cpio.EOFReader{RecordReader: cpio.Newc.Reader(bytes.NewReader(data))})
	if err != nil {
		return nil, fmt.Errorf("cpio: %w", err)
	}
	var out []string
	for _, r := range recs {
		out = append(out, "/"+r.Name)
	}
	sort.Strings(out)
	return out, nil
}

// ReadFile returns one file's content from an initramfs.
func ReadFile(r io.Reader, name string) ([]byte, error) {
	data, err := decompress(r)
	if err != nil {
		return nil, err
	}
	var out []byte
	found := false
	err = cpio.ForEachRecord(cpio.EOFReader{RecordReader: cpio.Newc.Reader(bytes.NewReader(data))}, func(rec cpio.Record) error {
		if "/"+rec.Name == name {
			found = true
			out, err = io.ReadAll(io.NewSectionReader(rec.ReaderAt, 0, int64(rec.FileSize)))
			return err
		}
		return nil
	})
	if err == nil && !found {
		err = fmt.Errorf("%s: not in the initramfs", name)
	}
	return out, err
}

func decompress(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	switch {
	case bytes.HasPrefix(data, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, err
		}
		return io.ReadAll(zr)
	case bytes.HasPrefix(data, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		return io.ReadAll(zr)
	}
	return data, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
