package store

import (
	"fmt"
	"sync"
	"time"
)

// Failures gathers the "still failing" reports of many waits (one per chunk a reader is
// blocked on) into one line per interval: how many waits are failing, since when, and
// the latest error. Without it, one stuck `dd` logged a line per chunk every 5 s.
// Policies that share one Failures (a pointer) share its interval.
type Failures struct {
	log   func(format string, args ...any)
	every time.Duration

	mu      sync.Mutex
	waits   map[uint64]time.Time // failing waits by token: when each began
	next    uint64
	printed time.Time // the last summary
}

// NewFailures logs through log at most once per every (default 5 s).
func NewFailures(log func(format string, args ...any), every time.Duration) *Failures {
	if every <= 0 {
		every = 5 * time.Second
	}
	return &Failures{log: log, every: every, waits: map[uint64]time.Time{}}
}

// begin counts a wait that started at start and has failed once; done ends it.
func (f *Failures) begin(start time.Time) (done func()) {
	f.mu.Lock()
	f.next++
	tok := f.next
	f.waits[tok] = start
	f.mu.Unlock()
	return func() {
		f.mu.Lock()
		delete(f.waits, tok)
		f.mu.Unlock()
	}
}

// still reports that a wait for what is still failing with err; a summary is logged when
// the interval since the last one has passed.
func (f *Failures) still(what string, attempts int, err error) {
	f.mu.Lock()
	now := time.Now()
	if now.Sub(f.printed) < f.every || len(f.waits) == 0 {
		f.mu.Unlock()
		return
	}
	n := len(f.waits)
	oldest := now
	for _, t := range f.waits {
		if t.Before(oldest) {
			oldest = t
		}
	}
	if now.Sub(oldest) < f.every { // a hiccup that a retry fixes at once is not news
		f.mu.Unlock()
		return
	}
	f.printed = now
	f.mu.Unlock()
	waits := "1 read is"
	if n > 1 {
		waits = fmt.Sprintf("%d reads are", n)
	}
	f.log("%s still failing, the oldest for %s (since %s); the latest: %s (%d attempts): %v",
		waits, now.Sub(oldest).Round(time.Second), oldest.Format("15:04:05"), what, attempts, err)
}
