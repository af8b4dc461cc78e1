package testnet

import (
	"context"
	"net"
	"os/exec"
	"runtime"

	"github.com/vishvananda/netns"
)

// Do runs fn on an OS thread inside the host's network namespace: sockets fn creates
// (listeners, outgoing connections) belong to that namespace for their whole life, while
// the rest of the process stays where it is. The thread is never handed back to other
// goroutines: it ends with fn, namespace and all.
func (h *Host) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // deliberately never unlocked
		ns, err := netns.GetFromPath(h.nsPath())
		if err != nil {
			errc <- err
			return
		}
		err = netns.Set(ns)
		ns.Close()
		if err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// Listen opens a listener inside the host's namespace ("127.0.0.1:0" is its own loopback;
// ":0" or the host's address is reachable from the other hosts).
func (h *Host) Listen(network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := h.Do(func() (err error) {
		ln, err = net.Listen(network, addr)
		return err
	})
	return ln, err
}

// Dial connects from inside the host's namespace.
func (h *Host) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := h.Do(func() (err error) {
		c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// Command returns cmd to run name inside the host's network namespace, and only that:
// nsenter rather than ip netns exec, which would also give it a mount namespace of its
// own, so a FUSE mount the command makes is visible to the caller. nsenter execs name,
// so cmd.Process is the command itself (signals and ctx reach it).
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + h.nsPath(), "--", name}, args...)...)
}

func (h *Host) nsPath() string { return netnsDir + "/" + h.Name }
