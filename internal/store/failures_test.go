package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestFailuresSummarise: 40 waits failing at once for about 1.3 s, with a 300 ms interval,
// log a handful of summary lines naming how many waits fail, not a line per wait per
// interval (40 x 4); a wait that a retry fixes at once logs nothing.
func TestFailuresSummarise(t *testing.T) {
	var mu sync.Mutex
	var lines []string
	logf := func(format string, args ...any) {
		mu.Lock()
		lines = append(lines, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	f := NewFailures(logf, 300*time.Millisecond)
	p := Policy{Timeout: 1300 * time.Millisecond, Log: logf, Failures: f}
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = p.Do(context.Background(), fmt.Sprintf("chunk %d", i), func(context.Context) error { return errors.New("connection refused") })
		}()
	}
	wg.Wait()
	mu.Lock()
	got := append([]string(nil), lines...)
	mu.Unlock()
	if len(got) == 0 || len(got) > 6 {
		t.Fatalf("%d log lines for 40 failing waits, want 1 to 6 summaries:\n%s", len(got), strings.Join(got, "\n"))
	}
	if !strings.Contains(got[0], "40 reads are still failing") || !strings.Contains(got[0], "connection refused") {
		t.Errorf("summary %q: want the count of failing reads and the latest error", got[0])
	}
	lines = nil
	n := 0
	_ = p.Do(context.Background(), "hiccup", func(context.Context) error {
		if n++; n == 1 {
			return errors.New("reset")
		}
		return nil
	})
	for _, l := range lines {
		if strings.Contains(l, "still failing") {
			t.Errorf("a wait fixed by its first retry logged %q", l)
		}
	}
}
