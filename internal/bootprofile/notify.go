package bootprofile

import (
	"net"
	"strings"
)

// ReadyNotifications listens for a container's sd_notify messages at path (what
// systemd-nspawn --notify-ready=yes forwards from the container's init) and returns the
// socket (the caller closes it, which ends the watch) and a channel closed at READY=1:
// the unit the container was started with is reached.
func ReadyNotifications(path string) (*net.UnixConn, <-chan struct{}, error) {
	sock, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, nil, err
	}
	ready := make(chan struct{})
	go func() {
		buf := make([]byte, 4096)
		for {
			n, _, err := sock.ReadFromUnix(buf)
			if err != nil {
				return // closed
			}
			for _, l := range strings.Split(string(buf[:n]), "\n") {
				if l == "READY=1" {
					close(ready)
					return
				}
			}
		}
	}()
	return sock, ready, nil
}
