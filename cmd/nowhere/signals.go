package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// The root context (made once, in main) is how every verb learns it was told to stop:
// the first SIGINT or SIGTERM cancels it with a signalCause, and each verb stops its
// work and cleans up (partial files, temporary files, locks, mounts) on its own way out.
// This is the only place that calls signal.Notify for them.
//
// A second signal is for the impatient: a verb still cleaning up after the first one
// (a mount waiting for its unmount) can ask for it with forceSignals and act on it;
// for any other verb the second signal exits at once, as an un-handled one would.

// signalCause is the cause of the root context's end when a signal ended it.
type signalCause struct{ sig os.Signal }

func (c signalCause) Error() string { return c.sig.String() }

// signalled returns the signal that ended ctx (or a context derived from it), if one did.
func signalled(ctx context.Context) (os.Signal, bool) {
	var c signalCause
	if errors.As(context.Cause(ctx), &c) {
		return c.sig, true
	}
	return nil, false
}

// signalName is how an error names a signal: SIGINT, SIGTERM.
func signalName(sig os.Signal) string {
	if s, ok := sig.(syscall.Signal); ok {
		if n := unix.SignalName(s); n != "" {
			return n
		}
	}
	return sig.String()
}

// signalExit is the exit status of a command a signal stopped, as a shell reports one
// the signal killed (130 for SIGINT, 143 for SIGTERM).
func signalExit(sig os.Signal) int {
	if s, ok := sig.(syscall.Signal); ok {
		return 128 + int(s)
	}
	return 1
}

type forceKey struct{}

// forcer hands the signals after the first to whoever asked for them.
type forcer struct {
	mu sync.Mutex
	ch chan os.Signal // nil until forceSignals is called
}

// forceSignals returns a channel that receives the signals after the first one (the one
// that cancelled ctx), instead of their exiting the process at once. A verb calls it
// when it has cleanup that may take long and can be cut short (mount's unmount).
func forceSignals(ctx context.Context) <-chan os.Signal {
	f, _ := ctx.Value(forceKey{}).(*forcer)
	if f == nil { // a context not from rootContext (tests): nothing will ever force
		return make(chan os.Signal)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ch == nil {
		f.ch = make(chan os.Signal, 1)
	}
	return f.ch
}

// rootContext returns the context every verb runs under, ended by the first SIGINT or
// SIGTERM. Signals are caught from here on, so one that arrives while a verb starts
// (before serve listens or mount mounts) still ends it cleanly instead of killing it.
func rootContext() (context.Context, func()) {
	f := &forcer{}
	ctx, cancel := context.WithCancelCause(context.WithValue(context.Background(), forceKey{}, f))
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		first := true
		for {
			select {
			case sig := <-sigs:
				if first {
					first = false
					cancel(signalCause{sig})
					continue
				}
				f.mu.Lock()
				ch := f.ch
				f.mu.Unlock()
				if ch == nil {
					logf("%s again: exiting at once", sig)
					os.Exit(signalExit(sig))
				}
				select {
				case ch <- sig:
				default: // one pending is enough to force
				}
			case <-done:
				return
			}
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		cancel(nil)
	}
}
