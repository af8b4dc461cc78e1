package store

import "time"

// Tarpits: a mirror that answers its probes at once and then holds real chunk requests
// until they time out. Three things keep one from stalling reads: a request that runs far
// past what its mirror usually takes counts against that mirror while it still runs (so
// the next reads go elsewhere before it ends); a round keeps hedging, one mirror after
// another, while nothing answers; and a mirror readmitted after a failure is on
// probation, taking one request at a time, each hedged early, until it has served
// probationChunks chunks.

// probationChunks is how many chunks a readmitted mirror serves before full traffic.
const probationChunks = 8

// beginAttempt books a request to m as running from start; endAttempt(id) ends it
// (m.mu held for both).
func (m *mirror) beginAttempt(start time.Time) int64 {
	if m.running == nil {
		m.running = map[int64]time.Time{}
	}
	m.attemptSeq++
	m.running[m.attemptSeq] = start
	return m.attemptSeq
}

func (m *mirror) endAttempt(id int64) { delete(m.running, id) }

// stalledFor is how long m's oldest running request has run (m.mu held): what m costs
// at least, whatever its estimate says, while that request goes unanswered.
func (m *mirror) stalledFor(now time.Time) time.Duration {
	var oldest time.Duration
	for _, t := range m.running {
		oldest = max(oldest, now.Sub(t))
	}
	return oldest
}

// readmit puts a mirror that was down back up (m.mu held). After a failure that was not
// followed by a chunk served (a strike), it comes back on probation.
func (m *mirror) readmit() {
	m.state = stateUp
	m.lastErr = ""
	if m.strikes > 0 {
		m.probation = probationChunks
	}
}

// served books a chunk m served (m.mu held): probation counts down, and only once it is
// over does m's record of stalls start again from nothing.
func (m *mirror) served() {
	if m.probation > 0 {
		m.probation--
		if m.probation > 0 {
			return
		}
	}
	m.strikes = 0
}

// onProbation says whether m is still proving itself.
func (m *mirror) onProbation() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.probation > 0
}
