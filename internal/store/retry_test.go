package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/store"
)

var errFlaky = errors.New("connection reset by peer")

// logs collects what a Policy logs.
type logs struct {
	mu    sync.Mutex
	lines []string
}

func (l *logs) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// within runs f and fails the test if it does not return in d (a hang guard, not a speed
// measurement: d is many times what f needs).
func within(t *testing.T, d time.Duration, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("still running after %s", d)
	}
}

func TestPolicyRetriesUntilSuccess(t *testing.T) {
	var l logs
	attempts := 0
	err := store.Policy{Log: l.printf}.Do(context.Background(), "fetch x", func(context.Context) error {
		attempts++
		if attempts < 4 {
			return errFlaky
		}
		return nil
	})
	if err != nil || attempts != 4 {
		t.Fatalf("Do: %v after %d attempts; want success on the 4th", err, attempts)
	}
	if !strings.Contains(l.String(), "fetch x: succeeded after 4 attempts") {
		t.Fatalf("log: %q", l.String())
	}
	// Success at once logs nothing.
	var quiet logs
	_ = store.Policy{Log: quiet.printf}.Do(context.Background(), "y", func(context.Context) error { return nil })
	if quiet.String() != "" {
		t.Fatalf("a first-time success logged %q", quiet.String())
	}
}

func TestPolicyLogsWhileFailing(t *testing.T) {
	var l logs
	attempts := 0
	_ = store.Policy{Log: l.printf, LogEvery: time.Nanosecond}.Do(context.Background(), "fetch z", func(context.Context) error {
		attempts++
		if attempts < 3 {
			return errFlaky
		}
		return nil
	})
	if !strings.Contains(l.String(), "fetch z: still failing after") || !strings.Contains(l.String(), errFlaky.Error()) {
		t.Fatalf("log while failing: %q", l.String())
	}
}

func TestPolicyTimeout(t *testing.T) {
	attempts := 0
	var err error
	within(t, 10*time.Second, func() {
		err = store.Policy{Timeout: 300 * time.Millisecond}.Do(context.Background(), "x", func(context.Context) error {
			attempts++
			return errFlaky
		})
	})
	if !errors.Is(err, errFlaky) || !strings.Contains(err.Error(), "gave up after 300ms") {
		t.Fatalf("Do: %v; want the last error and how long it tried", err)
	}
	if attempts < 2 {
		t.Fatalf("gave up after %d attempts", attempts)
	}
}

// The timeout bounds the whole operation, including an attempt that never returns by
// itself (a server that accepts the connection and then goes silent).
func TestPolicyTimeoutStopsAHangingAttempt(t *testing.T) {
	var err error
	within(t, 10*time.Second, func() {
		err = store.Policy{Timeout: 200 * time.Millisecond}.Do(context.Background(), "x", func(ctx context.Context) error {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(60 * time.Second):
				return errors.New("the test's hang guard fired")
			}
		})
	})
	if err == nil || !strings.Contains(err.Error(), "gave up after 200ms") {
		t.Fatalf("Do with a hanging attempt: %v; want a timeout error", err)
	}
	if errors.Is(err, context.Canceled) {
		t.Fatalf("timeout reported as cancellation: %v", err)
	}
}

func TestPolicyPermanent(t *testing.T) {
	attempts := 0
	bad := errors.New("404")
	err := store.Policy{}.Do(context.Background(), "x", func(context.Context) error {
		attempts++
		return fmt.Errorf("wrapped: %w", store.Permanent(bad))
	})
	if attempts != 1 || !errors.Is(err, bad) {
		t.Fatalf("Permanent: %v after %d attempts; want the error at once", err, attempts)
	}
	if err.Error() != "404" {
		t.Fatalf("Permanent error comes back as %q, want the inner error", err)
	}
}

func TestPolicyCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	attempts := 0
	var err error
	within(t, 10*time.Second, func() {
		err = store.Policy{}.Do(ctx, "x", func(context.Context) error {
			attempts++
			if attempts == 3 {
				cancel() // cancelled between attempts: no fourth one
			}
			return errFlaky
		})
	})
	if !errors.Is(err, context.Canceled) || attempts != 3 {
		t.Fatalf("Do: %v after %d attempts; want context.Canceled after 3", err, attempts)
	}
	// Cancelled during the backoff wait, with no timeout (a hard mount): returns promptly.
	ctx2, cancel2 := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel2)
	within(t, 10*time.Second, func() {
		err = store.Policy{}.Do(ctx2, "x", func(context.Context) error { return errFlaky })
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Do cancelled while waiting: %v", err)
	}
}

// Attempts bounds the tries: one attempt returns the error as it is; more end with a note.
func TestPolicyAttempts(t *testing.T) {
	for _, n := range []int{1, 3} {
		attempts := 0
		var err error
		within(t, 10*time.Second, func() {
			err = store.Policy{Attempts: n}.Do(context.Background(), "x", func(context.Context) error {
				attempts++
				return errFlaky
			})
		})
		if attempts != n || !errors.Is(err, errFlaky) {
			t.Fatalf("Attempts %d: %v after %d attempts", n, err, attempts)
		}
		if n == 1 && err != errFlaky {
			t.Errorf("one attempt: %q, want the error as it is", err)
		}
		if n == 3 && !strings.Contains(err.Error(), "gave up after 3 attempts") {
			t.Errorf("three attempts: %q, want a note saying so", err)
		}
	}
}
