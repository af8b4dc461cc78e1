package main

import (
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/nowhere-boot/nowhere/internal/fusefs"
	"github.com/nowhere-boot/nowhere/internal/units"
)

// unmountBound is how long a mount takes at most to end once told to (SIGINT, SIGTERM,
// an unmount from outside), whatever --timeout says and whether or not a mirror answers:
// reads still waiting get EIO, the mount is unmounted (detached lazily when the kernel
// keeps it busy), and the process exits. docs/mirrors.md states it.
const unmountBound = 10 * time.Second

// endMount ends a mount within unmountBound and says, in one line each, what it had to
// do beyond a clean unmount. Reads cut off make it an error (a non-zero exit): they got
// EIO. A second signal while it waits exits at once.
func endMount(srv *fusefs.Server, mnt string, sigs <-chan os.Signal) error {
	type ended struct {
		e   fusefs.Ending
		err error
	}
	done := make(chan ended, 1)
	go func() {
		e, err := srv.Unmount(unmountBound)
		done <- ended{e, err}
	}()
	var r ended
	select {
	case r = <-done:
	case sig := <-sigs:
		// Detach first: exiting with the mount in place would leave a dead one behind
		// ("transport endpoint is not connected").
		_ = syscall.Unmount(mnt, syscall.MNT_DETACH)
		return fmt.Errorf("%s again: exiting without waiting for %s to unmount (detached it)", sig, mnt)
	}
	if r.err != nil {
		return fmt.Errorf("unmount %s: %w", mnt, r.err)
	}
	switch {
	case r.e.Detached && r.e.StillServing:
		logf("%s was busy (a loop device or an open file): detached it lazily; still in use after %s, exiting anyway: what uses it now gets errors", mnt, unmountBound)
	case r.e.Detached:
		logf("%s was busy (a loop device or an open file): detached it lazily", mnt)
	case r.e.StillServing:
		logf("%s: still in use %s after it was unmounted, exiting anyway: what uses it now gets errors", mnt, unmountBound)
	}
	if n := r.e.CutOff; n > 0 {
		return fmt.Errorf("unmounted %s with %s still waiting for a mirror (%s got EIO)", mnt, units.Count(n, "read"), itOrThem(n, "it", "they"))
	}
	return nil
}

// itOrThem picks the pronoun for n things: one for a single one, many otherwise.
func itOrThem(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
