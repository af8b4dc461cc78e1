// Package loopdev attaches a file to a loop device, read-only, so a filesystem image
// served as a FUSE file can be mounted.
package loopdev

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Device is an attached loop device. Keep it open until the mount that uses it has
// returned: with autoclear, closing the last descriptor of an unused device detaches it,
// and a mount racing with that fails with "attempt to access beyond end of device".
type Device struct {
	Path string
	f    *os.File
	// DirectIO tells whether the kernel reads the backing file with O_DIRECT (no second
	// copy of the image in the page cache, which matters under memory pressure).
	DirectIO bool
}

// Close releases the device descriptor; with autoclear the kernel detaches the device
// once nothing (no mount) uses it.
func (d *Device) Close() error { return d.f.Close() }

// Options for Attach.
type Options struct {
	DirectIO  bool // read the backing file with O_DIRECT
	AutoClear bool // detach when the last user goes away
}

// Attach binds file to a free loop device, read-only.
func Attach(file string, o Options) (*Device, error) {
	backing, err := os.OpenFile(file, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("loop: %w", err)
	}
	defer backing.Close() // the device holds its own reference
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("loop: %w (is the loop module loaded?)", err)
	}
	defer ctl.Close()

	flags := uint32(unix.LO_FLAGS_READ_ONLY)
	if o.AutoClear {
		flags |= unix.LO_FLAGS_AUTOCLEAR
	}
	if o.DirectIO {
		flags |= unix.LO_FLAGS_DIRECT_IO
	}
	// Another process can take the free device between GET_FREE and CONFIGURE: try again.
	for attempt := 0; attempt < 16; attempt++ {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return nil, fmt.Errorf("loop: no free device: %w", err)
		}
		path := fmt.Sprintf("/dev/loop%d", n)
		dev, err := openDevice(path)
		if err != nil {
			return nil, fmt.Errorf("loop: %w", err)
		}
		cfg := &unix.LoopConfig{Fd: uint32(backing.Fd())}
		cfg.Info.Flags = flags
		copy(cfg.Info.File_name[:], file)
		err = unix.IoctlLoopConfigure(int(dev.Fd()), cfg)
		if errors.Is(err, unix.EBUSY) {
			dev.Close()
			continue
		}
		if err != nil {
			dev.Close()
			return nil, fmt.Errorf("loop: configure %s with %s: %w", path, file, err)
		}
		d := &Device{Path: path, f: dev}
		d.DirectIO = readFlag(fmt.Sprintf("/sys/block/loop%d/loop/dio", n))
		return d, nil
	}
	return nil, errors.New("loop: every free device was taken by someone else")
}

// openDevice opens a loop device node, waiting briefly for devtmpfs to create it.
func openDevice(path string) (*os.File, error) {
	var err error
	for i := 0; i < 50; i++ {
		var f *os.File
		if f, err = os.OpenFile(path, os.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
			return f, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			break
		}
		unix.Nanosleep(&unix.Timespec{Nsec: 20e6}, nil)
	}
	return nil, err
}

func readFlag(file string) bool {
	b, err := os.ReadFile(file)
	return err == nil && strings.TrimSpace(string(b)) == "1"
}

// BackingFile returns the file behind a loop device, as the kernel reports it.
func BackingFile(dev string) (string, error) {
	name := strings.TrimPrefix(dev, "/dev/")
	b, err := os.ReadFile("/sys/block/" + name + "/loop/backing_file")
	return strings.TrimSpace(string(b)), err
}
