package image

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// slowFailing fails every fetch after a delay, as a mirror set at its --timeout does.
type slowFailing struct {
	delay time.Duration
	calls atomic.Int32
}

func (f *slowFailing) Fetch(ctx context.Context, ref chunk.Ref) (store.Fetched, error) {
	f.calls.Add(1)
	time.Sleep(f.delay)
	return store.Fetched{}, errors.New("no mirror answered within the timeout")
}

// TestFailMemoryFailsRetriesAtOnce: the kernel retries a page read that failed; with
// FailMemory the retry of a chunk that failed a moment ago fails at once, without another
// fetch (so a read with --timeout D gets its error after D, not 2-3 D); without it, the
// retry waits for a fetch of its own.
func TestFailMemoryFailsRetriesAtOnce(t *testing.T) {
	f := sharedFixture(t)
	for _, mem := range []time.Duration{time.Minute, 0} {
		sf := &slowFailing{delay: 200 * time.Millisecond}
		r := NewReader(f.ix, sf, Options{ReadAhead: -1, FailMemory: mem})
		buf := make([]byte, 4096)
		if _, err := r.ReadAt(buf, 0); err == nil {
			t.Fatal("a read through a failing fetcher succeeded")
		}
		if _, err := r.ReadAt(buf, 0); err == nil {
			t.Fatal("the retry succeeded")
		}
		if mem > 0 && sf.calls.Load() != 1 {
			t.Errorf("with FailMemory: the retry fetched again (%d fetches), waiting the timeout once more", sf.calls.Load())
		}
		if mem == 0 && sf.calls.Load() != 2 {
			t.Errorf("without FailMemory: %d fetches, want the retry's own", sf.calls.Load())
		}
	}
}
