package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Policy says how long to keep trying a fetch that fails. Reads of a mounted image must
// neither hang silently nor fail at the first hiccup: they retry with backoff, log while
// they wait, and give up only after Timeout (0 = never, the right choice for a root
// filesystem, like NFS "hard" mounts).
type Policy struct {
	Timeout time.Duration
	// Attempts bounds the tries (0: no bound). One attempt is for callers that run their
	// own loop around the whole operation (the boot daemon loading an index retries with
	// its own backoff and says why on the console).
	Attempts int
	Log      func(format string, args ...any) // nil: silent
	LogEvery time.Duration                    // default 5 s
	// Failures, when set, takes the "still failing" reports instead of Log: one summary
	// line per interval for all the waits sharing it, not a line per wait.
	Failures *Failures
}

// Do runs fn until it succeeds, ctx ends, the policy's timeout passes or its attempts are
// spent, or fn returns an error marked Permanent.
func (p Policy) Do(ctx context.Context, what string, fn func(context.Context) error) error {
	start := time.Now()
	var deadline <-chan time.Time
	attemptCtx := ctx
	if p.Timeout > 0 {
		t := time.NewTimer(p.Timeout)
		defer t.Stop()
		deadline = t.C
		// The timeout also ends an attempt in progress: a server that accepts a request
		// and then goes silent must not hold the caller past it.
		var cancel context.CancelFunc
		attemptCtx, cancel = context.WithTimeout(ctx, p.Timeout)
		defer cancel()
	}
	every := p.LogEvery
	if every <= 0 {
		every = 5 * time.Second
	}
	lastLog := start
	waits := newRetryBackoff()
	var cause error // the latest error that says what went wrong (not "deadline exceeded")
	for attempt := 1; ; attempt++ {
		err := fn(attemptCtx)
		if err != nil && (cause == nil || attemptCtx.Err() == nil) {
			cause = err
		}
		if err == nil {
			if attempt > 1 && p.Log != nil {
				p.Log("%s: succeeded after %d attempts in %s", what, attempt, time.Since(start).Round(time.Millisecond))
			}
			return nil
		}
		var perm *permanentError
		if errors.As(err, &perm) {
			return perm.err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if attemptCtx.Err() != nil {
			return fmt.Errorf("%w (gave up after %s, %d attempts)", cause, p.Timeout, attempt)
		}
		if p.Attempts > 0 && attempt >= p.Attempts {
			if p.Attempts == 1 {
				return err
			}
			return fmt.Errorf("%w (gave up after %d attempts)", err, attempt)
		}
		switch {
		case p.Failures != nil:
			if attempt == 1 {
				defer p.Failures.begin(start)()
			}
			p.Failures.still(what, attempt, err)
		case p.Log != nil && time.Since(lastLog) >= every:
			p.Log("%s: still failing after %s (%d attempts): %v", what, time.Since(start).Round(time.Second), attempt, err)
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return fmt.Errorf("%w (gave up after %s, %d attempts)", cause, p.Timeout, attempt)
		case <-time.After(waits.NextBackOff()): // jittered: a fleet must not retry in lockstep
		}
	}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks an error that retrying cannot fix.
func Permanent(err error) error { return &permanentError{err} }
