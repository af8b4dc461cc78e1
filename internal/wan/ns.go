package wan

import (
	"context"
	"net"
	"os/exec"
	"runtime"

	"golang.org/x/sys/unix"
)

// Do runs fn on an OS thread inside the host's network namespace: sockets fn creates
// (listeners, outgoing connections) belong to that namespace for their whole life, while
// the rest of the process stays where it is. The thread is never handed back to other
// goroutines: it ends with fn, namespace and all.
func (h *Host) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // deliberately never unlocked
		fd, err := unix.Open(netnsDir+"/"+h.Name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
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

// Command returns cmd to run name inside the host's namespace (ip netns exec).
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.Name, name}, args...)...)
}
