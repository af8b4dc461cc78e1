// Package bootprofile records a boot profile without a VM: it serves an image over the
// project's own FUSE file with every read noted, loop-mounts that file read-only, boots it
// with systemd-nspawn (seconds, at native speed) until a systemd unit is reached, and
// returns the reads in the order the boot made them. Mapped onto an index, they are a
// one-boot profile.Trace, as `nowhere profile record` makes from a mount.
//
//	image bytes ─▶ Reads (notes each read) ─▶ FUSE file ─▶ loop, ro ─▶ overlay (tmpfs) ─▶ nspawn -b
//
// A container boot reads what a machine's boot reads of its root filesystem (init, units,
// libraries, /etc) but not the kernel's or initramfs's own reads, and with a private
// network: it is a good profile, and profiles recorded from real boots merge with it.
package bootprofile

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nowhere-boot/nowhere/internal/fstype"
	"github.com/nowhere-boot/nowhere/internal/fusefs"
	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/profile"
)

// DefaultUntil is the unit a boot is recorded up to by default.
const DefaultUntil = "multi-user.target"

// DefaultTimeout bounds a boot: a Debian root reaches multi-user.target in about 1.5 s
// here, so minutes mean it never will (a unit waiting for a device, a dead image).
const DefaultTimeout = 3 * time.Minute

// stopSteps is how the container is stopped once recorded. Nothing it does then matters
// (the image is read-only, its writes are on a tmpfs), so a clean poweroff is offered
// briefly: SIGTERM makes nspawn ask its systemd to halt (a Debian root does in 0.4 s; a
// root without systemd-shutdown never does), a second SIGTERM makes nspawn kill it at
// once, SIGKILL ends nspawn itself (its container dies with it).
var stopSteps = []struct {
	sig  syscall.Signal
	wait time.Duration
}{{syscall.SIGTERM, 3 * time.Second}, {syscall.SIGTERM, 5 * time.Second}, {syscall.SIGKILL, 5 * time.Second}}

// Options for Boot.
type Options struct {
	Until   string               // the systemd unit to boot to (default DefaultUntil)
	Timeout time.Duration        // how long the boot may take (default DefaultTimeout)
	Log     func(string, ...any) // one line per step; nil: silent
	Nspawn  string               // the command (default "systemd-nspawn", looked up on PATH)
}

// Unavailable is a boot that cannot be tried here or of this image: no systemd-nspawn, not
// root, not a filesystem image, no systemd in it. Callers that can do without a profile
// (pack) say it in one line and go on.
type Unavailable struct{ Reason string }

func (u *Unavailable) Error() string { return u.Reason }

// Content is what the FUSE file serves (fusefs.Content).
type Content = fusefs.Content

// Result is a recorded boot.
type Result struct {
	Reads   *Reads
	Elapsed time.Duration // from starting systemd-nspawn to reaching the unit
}

// span is one read the boot made.
type span struct {
	off int64
	n   int
}

// Reads is content whose reads are noted, in order, until Stop. It keeps every read (a
// Debian boot makes a few thousand) and maps them onto an index only at the end, so the
// boot can run before the image is packed.
type Reads struct {
	Content
	mu      sync.Mutex
	spans   []span
	bytes   int64
	stopped bool
}

// Record wraps c.
func Record(c Content) *Reads { return &Reads{Content: c} }

func (r *Reads) note(off int64, n int) {
	r.mu.Lock()
	if !r.stopped && n > 0 {
		r.spans = append(r.spans, span{off, n})
		r.bytes += int64(n)
	}
	r.mu.Unlock()
}

// ReadAtContext notes the read, then serves it.
func (r *Reads) ReadAtContext(ctx context.Context, p []byte, off int64) (int, error) {
	r.note(off, len(p))
	return r.Content.ReadAtContext(ctx, p, off)
}

// slicer is fusefs.Slicer.
type slicer interface {
	ReadSlices(ctx context.Context, vecs [][]byte, off int64, n int) ([][]byte, int, error)
}

// ReadSlices keeps the zero-copy path of content that has one (image.Reader).
func (r *Reads) ReadSlices(ctx context.Context, vecs [][]byte, off int64, n int) ([][]byte, int, error) {
	r.note(off, n)
	if s, ok := r.Content.(slicer); ok {
		return s.ReadSlices(ctx, vecs, off, n)
	}
	p := make([]byte, n)
	k, err := r.Content.ReadAtContext(ctx, p, off)
	return append(vecs, p[:k]), k, err
}

// Stop ends the recording: later reads (the container's shutdown) are not noted.
func (r *Reads) Stop() {
	r.mu.Lock()
	r.stopped = true
	r.mu.Unlock()
}

// Bytes returns how many bytes the noted reads asked for.
func (r *Reads) Bytes() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bytes
}

// Trace maps the reads onto ix (the index of the image the reads were made of): its
// entries in the order of their first read, as one boot.
func (r *Reads) Trace(ix *index.Index) *profile.Trace {
	rec := profile.NewRecorder(ix)
	r.mu.Lock()
	spans := append([]span(nil), r.spans...)
	r.mu.Unlock()
	for _, s := range spans {
		rec.Note(s.off, s.n)
	}
	return rec.Trace()
}

// file is a local image file or block device as Content.
type file struct {
	f    *os.File
	size int64
}

func (f *file) ReadAtContext(_ context.Context, p []byte, off int64) (int, error) {
	return f.f.ReadAt(p, off)
}
func (f *file) Size() int64 { return f.size }

// BootFile boots the image in the file (or block device) at path: what pack does before
// packing, since the packed chunks are that file's bytes and reading them from the file
// records the same offsets without fetching back what was just stored.
func BootFile(ctx context.Context, path string, o Options) (*Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := f.Seek(0, 2) // also a block device's size
	if err != nil {
		return nil, err
	}
	return Boot(ctx, &file{f, size}, o)
}

// Boot boots the filesystem image c serves in a container until o.Until is reached and
// returns its reads. Everything it sets up (the FUSE mount, the loop device and its mount,
// the container, the temporary directory) is gone when it returns, also on failure.
func Boot(ctx context.Context, c Content, o Options) (res *Result, err error) {
	if o.Until == "" {
		o.Until = DefaultUntil
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	logf := o.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	nspawn := o.Nspawn
	if nspawn == "" {
		nspawn = "systemd-nspawn"
	}
	if strings.ContainsAny(o.Until, "/ \t\n") || !strings.Contains(o.Until, ".") {
		return nil, fmt.Errorf("unit %q: want a systemd unit name such as multi-user.target", o.Until)
	}
	// The cheap refusals first, before anything is mounted.
	if nspawn, err = exec.LookPath(nspawn); err != nil {
		return nil, &Unavailable{"systemd-nspawn not found on the PATH (Debian package systemd-container)"}
	}
	if os.Geteuid() != 0 {
		return nil, &Unavailable{"a container boot needs root (FUSE, a loop mount, systemd-nspawn)"}
	}
	head := make([]byte, fstype.HeaderSize)
	n, _ := c.ReadAtContext(ctx, head, 0)
	fs := fstype.Detect(head[:n])
	if fs == fstype.Unknown {
		return nil, &Unavailable{"not an ext4, squashfs or erofs image: nothing a container can boot"}
	}

	// ctx ends on SIGINT or SIGTERM (the CLI's root context): the boot is stopped and every
	// step below undone before Run returns, so nothing is left behind.
	tmp, err := os.MkdirTemp("", "nowhere-bootprofile-")
	if err != nil {
		return nil, err
	}
	// Undone in reverse order whatever happens; each step adds its own undo.
	var undo []func() error
	defer func() {
		for i := len(undo) - 1; i >= 0; i-- {
			if uerr := undo[i](); uerr != nil && err == nil {
				err = uerr
			}
		}
		os.RemoveAll(tmp)
	}()
	fuseDir, root := filepath.Join(tmp, "fuse"), filepath.Join(tmp, "root")
	for _, d := range []string{fuseDir, root} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return nil, err
		}
	}
	reads := Record(c)
	srv, err := fusefs.Mount(fuseDir, []fusefs.File{{Name: "image", Content: reads}}, fusefs.Options{
		FsName: "nowhere-bootprofile", Log: logf, Context: ctx,
	})
	if err != nil {
		return nil, fmt.Errorf("FUSE mount: %w", err)
	}
	undo = append(undo, func() error {
		if _, err := srv.Unmount(10 * time.Second); err != nil {
			return fmt.Errorf("unmounting %s: %w", fuseDir, err)
		}
		return nil
	})
	// The loop device reads the FUSE file with direct I/O, as the boot's root daemon sets
	// it up (internal/boot/loopdev): without it the kernel's read-ahead of the FUSE file
	// (fusefs.ReadAhead) would add to the profile what no real boot reads.
	out, err := exec.CommandContext(ctx, "losetup", "--find", "--show", "--read-only", "--direct-io=on", filepath.Join(fuseDir, "image")).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("losetup: %s", firstLine(out, err))
	}
	dev := strings.TrimSpace(string(out))
	undo = append(undo, func() error {
		if out, err := exec.Command("losetup", "--detach", dev).CombinedOutput(); err != nil {
			return fmt.Errorf("losetup --detach %s: %s", dev, firstLine(out, err))
		}
		return nil
	})
	if out, err := exec.CommandContext(ctx, "mount", "-t", string(fs), "-o", "ro", dev, root).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("mounting the %s image (%s): %s", fs, dev, firstLine(out, err))
	}
	undo = append(undo, func() error { return unmount(root) })

	if err := checkRoot(root, o.Until); err != nil {
		return nil, err
	}
	logf("boot profile: booting the %s image in systemd-nspawn until %s (read-only, writes to tmpfs, no network)", fs, o.Until)
	start := time.Now()
	if err := runContainer(ctx, nspawn, root, tmp, o, logf, reads); err != nil {
		return nil, err
	}
	elapsed := time.Since(start)
	return &Result{Reads: reads, Elapsed: elapsed}, nil
}

// checkRoot refuses a root nspawn -b could not boot to unit: no systemd (nspawn -b would
// run /sbin/init, which then is something else), or no such unit.
func checkRoot(root, unit string) error {
	r, err := os.OpenRoot(root) // resolves the image's own relative symlinks (lib -> usr/lib) inside it
	if err != nil {
		return err
	}
	defer r.Close()
	found := false
	for _, p := range []string{"usr/lib/systemd/systemd", "lib/systemd/systemd"} {
		if st, err := r.Stat(p); err == nil && st.Mode().IsRegular() {
			found = true
			break
		}
	}
	if !found {
		return &Unavailable{"the image has no systemd (no /usr/lib/systemd/systemd): nothing to boot in a container"}
	}
	for _, d := range []string{"etc/systemd/system", "usr/lib/systemd/system", "lib/systemd/system"} {
		if _, err := r.Stat(d + "/" + unit); err == nil {
			return nil
		}
	}
	return &Unavailable{fmt.Sprintf("the image has no unit %s (not in /etc/systemd/system or /usr/lib/systemd/system)", unit)}
}

// runContainer boots root with systemd-nspawn until its systemd says it is ready (the boot
// transaction to unit is done), stops recording, then stops the container, bounded.
func runContainer(ctx context.Context, nspawn, root, tmp string, o Options, logf func(string, ...any), reads *Reads) error {
	// nspawn --notify-ready=yes forwards the container's READY=1 to its own NOTIFY_SOCKET:
	// an exact "unit reached" without reading the console.
	sockPath := filepath.Join(tmp, "notify")
	sock, ready, err := ReadyNotifications(sockPath)
	if err != nil {
		return err
	}
	defer sock.Close()
	console, err := os.Create(filepath.Join(tmp, "console.log"))
	if err != nil {
		return err
	}
	defer console.Close()
	args := []string{
		"--boot", "--directory", root,
		// Not registered with machined (absent here) and in the caller's own cgroup.
		"--register=no", "--keep-unit",
		"--machine", fmt.Sprintf("nowhere-profile-%d", os.Getpid()),
		// The image stays read-only: the container writes to a tmpfs overlaid on it.
		"--volatile=overlay",
		// Its services must not configure the host's network or its journal.
		"--private-network", "--link-journal=no",
		// No terminal needed: the console goes to a file.
		"--console=pipe",
		"--notify-ready=yes",
		"--", "systemd.unit=" + o.Until, "systemd.show_status=yes",
	}
	cmd := exec.Command(nspawn, args...)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sockPath)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, console, console
	// Its own process group (a terminal's ^C reaches us, and we stop it in order), and
	// killed if we die, so no container outlives a killed pack (nspawn's container dies
	// with it).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting systemd-nspawn: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	start := time.Now()
	timer := time.NewTimer(o.Timeout)
	defer timer.Stop()
	var bootErr error
	select {
	case <-ready:
		reads.Stop()
		logf("boot profile: reached %s in %.1f s: %d MB read", o.Until, time.Since(start).Seconds(), (reads.Bytes()+1<<19)>>20)
	case err := <-exited:
		return fmt.Errorf("systemd-nspawn ended (%v) before %s was reached: %s", err, o.Until, lastLine(console.Name()))
	case <-timer.C:
		bootErr = fmt.Errorf("%s not reached within %s: %s", o.Until, o.Timeout, lastLine(console.Name()))
	case <-ctx.Done():
		bootErr = context.Cause(ctx)
	}
	stopping := time.Now()
	if err := stop(cmd, exited); err != nil && bootErr == nil {
		bootErr = err
	}
	if bootErr == nil {
		logf("boot profile: container stopped in %.1f s", time.Since(stopping).Seconds())
	}
	return bootErr
}

// stop ends the container (stopSteps), bounded.
func stop(cmd *exec.Cmd, exited <-chan error) error {
	for _, st := range stopSteps {
		_ = cmd.Process.Signal(st.sig)
		select {
		case <-exited:
			return nil
		case <-time.After(st.wait):
		}
	}
	return fmt.Errorf("systemd-nspawn (pid %d) did not exit after SIGKILL", cmd.Process.Pid)
}

// unmount unmounts dir, lazily when it stays busy (a process the container left); the loop
// device, detached next, is then freed (autoclear) as soon as the last user goes.
func unmount(dir string) error {
	var err error
	for i := 0; i < 20; i++ {
		if err = syscall.Unmount(dir, 0); err == nil || errors.Is(err, syscall.EINVAL) {
			return nil
		}
		if !errors.Is(err, syscall.EBUSY) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if lerr := syscall.Unmount(dir, syscall.MNT_DETACH); lerr == nil {
		return nil
	}
	return fmt.Errorf("unmounting %s: %w", dir, err)
}

func firstLine(out []byte, err error) string {
	if s, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n"); s != "" {
		return s
	}
	return err.Error()
}

// lastLine is the console's last non-empty line: what a failed boot said last.
func lastLine(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "no console output"
	}
	last := "no console output"
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for sc.Scan() {
		if s := strings.TrimSpace(sc.Text()); s != "" {
			last = "console: " + s
		}
	}
	return last
}
