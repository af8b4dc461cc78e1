package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nowhere-boot/nowhere/internal/chunk"
)

// MirrorOptions tune a MirrorSet. Zero values take the defaults.
type MirrorOptions struct {
	// Spread is how many of the best mirrors share the requests at once (default 3).
	Spread int
	// HedgeFraction bounds hedged requests to this fraction of all requests (default
	// 0.05; negative disables hedging).
	HedgeFraction float64
	// HedgeMin is the shortest time a request runs before it may be hedged (default 10 ms).
	HedgeMin time.Duration
	// AttemptTimeout ends one request to one mirror that stalls (default 30 s); the
	// request then moves to another mirror.
	AttemptTimeout time.Duration
	// ProbeFile is the small file startup and background probes fetch when no chunk is
	// known yet (default "mirrors"; a 404 for it still shows the mirror answers).
	ProbeFile string
	// Wait says how long a fetch keeps retrying once every mirror failed it: Timeout 0
	// waits forever (a root filesystem), logging every LogEvery.
	Wait Policy
	// Log receives demotions, fail-backs and hash failures (nil: Wait.Log, else silent).
	Log func(format string, args ...any)
	// Metrics is told the set's requests, hedges, failovers and waits (nil: nobody;
	// internal/metrics.Store exports them to Prometheus).
	Metrics Observer
	// MaxPeers bounds how many LAN peers the set takes (default 256; see AddPeer).
	MaxPeers int
	// PeerTimeout ends one request to a peer that stalls (default 10 s).
	PeerTimeout time.Duration
}

// MirrorSet is a Fetcher (and a Store) over many stores holding the same chunks: HTTP
// mirrors, local directories. It ranks them by measured latency and throughput, spreads
// requests over the best, fails over at once when one errs, hedges requests that run
// longer than usual, demotes mirrors that fail and takes them back when a background
// probe finds them healthy. Each chunk is verified against its name before it counts as
// fetched, so a mirror that serves bad bytes is caught and blamed.
type MirrorSet struct {
	opt MirrorOptions

	mu      sync.Mutex
	mirrors []*mirror
	known   *chunk.Ref // a chunk every healthy mirror should have, for probes
	tokens  float64    // hedge budget

	stop     chan struct{}
	stopOnce sync.Once
	probing  sync.WaitGroup
}

var (
	_ Fetcher = (*MirrorSet)(nil)
	_ Store   = (*MirrorSet)(nil)
)

type mirrorState int

const (
	stateUp   mirrorState = iota
	stateDown             // failed a request or a probe: re-probed with backoff
	stateBad              // served a corrupt chunk: re-probed rarely, and only a verified chunk brings it back
)

func (s mirrorState) String() string {
	return [...]string{"up", "down", "bad"}[s]
}

// mirror is one member of the set. Its lock guards everything below it.
type mirror struct {
	store   Store
	name    string
	peer    bool    // a LAN peer's cache: may lack chunks, never serves files (peers.go)
	hit     float64 // peers: moving average of how often it had the chunk asked for
	answers int64   // peers: how many answers hit reflects (sawChunk)

	mu        sync.Mutex
	state     mirrorState
	est       estimate
	inflight  int
	nextProbe time.Time
	backoff   time.Duration
	probing   bool
	lastErr   string
	requests  int64
	failures  int64
	corrupt   int64
	hedges    int64
	bytes     int64
	// strikes counts the demotions since m last served a chunk: a mirror that answers its
	// probe and then stalls on real chunks (a tarpit) waits longer after each one, where it
	// was readmitted half a second later every time.
	strikes int
	// probation counts the chunks a mirror readmitted after a strike has still to serve
	// before it takes full traffic (probation.go).
	probation  int
	running    map[int64]time.Time // start of each request in flight, by attempt
	attemptSeq int64
}

const (
	probeBackoffMin = 500 * time.Millisecond
	probeBackoffMax = 30 * time.Second
	badBackoffMin   = time.Minute
	badBackoffMax   = 30 * time.Minute
	probeTick       = 200 * time.Millisecond
	probeTimeout    = 5 * time.Second
	hedgeBurst      = 5 // hedges allowed before the fraction builds up budget
)

// NewMirrorSet returns a set over stores (at least one), in the given order until
// measurements say otherwise. It starts a background prober; Close stops it.
func NewMirrorSet(stores []Store, opt MirrorOptions) (*MirrorSet, error) {
	if len(stores) == 0 {
		return nil, errors.New("mirror set: no mirrors")
	}
	if opt.Spread <= 0 {
		opt.Spread = 3
	}
	opt.Metrics = observer(opt.Metrics)
	if opt.HedgeFraction == 0 {
		opt.HedgeFraction = 0.05
	}
	if opt.HedgeMin <= 0 {
		opt.HedgeMin = 10 * time.Millisecond
	}
	if opt.AttemptTimeout <= 0 {
		opt.AttemptTimeout = 30 * time.Second
	}
	if opt.ProbeFile == "" {
		opt.ProbeFile = MirrorListPath
	}
	if opt.Log == nil {
		opt.Log = opt.Wait.Log
	}
	if opt.Log == nil {
		opt.Log = func(string, ...any) {}
	}
	if opt.MaxPeers <= 0 {
		opt.MaxPeers = defaultMaxPeers
	}
	if opt.PeerTimeout <= 0 {
		opt.PeerTimeout = defaultPeerTimeout
	}
	s := &MirrorSet{opt: opt, stop: make(chan struct{}), tokens: hedgeBurst}
	s.Add(stores...)
	s.probing.Add(1)
	go s.prober()
	return s, nil
}

// Add puts more mirrors in the set (ignoring ones it has), ranked last until measured.
func (s *MirrorSet) Add(stores ...Store) { s.add(stores...) }

// add is Add that returns the mirrors it added (a caller probing them must not find them
// by position: peers come and go beside them).
func (s *MirrorSet) add(stores ...Store) []*mirror {
	s.mu.Lock()
	defer s.mu.Unlock()
	var added []*mirror
	for _, st := range stores {
		name := st.String()
		if slices.ContainsFunc(s.mirrors, func(m *mirror) bool { return m.name == name }) {
			continue
		}
		// A newcomer's order among the unmeasured keeps the caller's order: a tiny
		// latency that grows with its position.
		m := &mirror{store: st, name: name}
		m.est.assumed = 0.05 + 0.001*float64(len(s.mirrors))
		s.mirrors = append(s.mirrors, m)
		added = append(added, m)
		s.opt.Metrics.MirrorAdded(name)
	}
	return added
}

// Len returns how many mirrors the set has.
func (s *MirrorSet) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.mirrors)
}

// Close stops the background prober.
func (s *MirrorSet) Close() error {
	s.stopOnce.Do(func() { close(s.stop) })
	s.probing.Wait()
	return nil
}

func (s *MirrorSet) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.mirrors) == 1 {
		return s.mirrors[0].name
	}
	return fmt.Sprintf("%s (+%d mirrors)", s.mirrors[0].name, len(s.mirrors)-1)
}

func (s *MirrorSet) snapshot() []*mirror {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.mirrors)
}

// choose returns the mirror (never a peer) a request for size bytes should go to next,
// skipping those already tried: the one among the best Spread healthy mirrors expected to answer first
// given the requests it already has in flight. When every healthy mirror was tried it
// falls back to demoted ones (a mirror may be back before its probe says so); nil when
// none is left.
func (s *MirrorSet) choose(size int, tried []*mirror) *mirror {
	type cand struct {
		m        *mirror
		state    mirrorState
		base     time.Duration
		cost     float64
		nextProb time.Time
	}
	var up, held, demoted []cand
	now := time.Now()
	for _, m := range s.snapshot() {
		if m.peer || slices.Contains(tried, m) {
			continue // peers are asked by choosePeer, never for files
		}
		m.mu.Lock()
		c := cand{m: m, state: m.state, base: m.est.expected(size), nextProb: m.nextProbe}
		c.cost = m.est.expectedWith(size, m.inflight).Seconds()
		// A request running far longer than expected costs m at least that long.
		if stalled := m.stalledFor(now); stalled > 2*c.base {
			c.base = max(c.base, stalled)
			c.cost = max(c.cost, stalled.Seconds())
		}
		busyOnProbation := m.probation > 0 && m.inflight > 0
		m.mu.Unlock()
		switch {
		case busyOnProbation:
			held = append(held, c) // one request at a time until it has proved itself
		case c.state == stateUp:
			up = append(up, c)
		default:
			demoted = append(demoted, c)
		}
	}
	if len(up) == 0 {
		up = held
	}
	if len(up) > 0 {
		slices.SortStableFunc(up, func(a, b cand) int { return cmpDur(a.base, b.base) })
		up = up[:min(len(up), s.opt.Spread)]
		best := up[0]
		for _, c := range up[1:] {
			if c.cost < best.cost {
				best = c
			}
		}
		return best.m
	}
	if len(demoted) > 0 {
		// Down before bad, then whichever is due for a probe soonest.
		slices.SortStableFunc(demoted, func(a, b cand) int {
			if a.state != b.state {
				return int(a.state) - int(b.state)
			}
			return a.nextProb.Compare(b.nextProb)
		})
		return demoted[0].m
	}
	return nil
}

func cmpDur(a, b time.Duration) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// hedgeDelay is how long a request to m may run before it is hedged: m's recent p95, or
// while m is new, a generous multiple of its expected time.
func (s *MirrorSet) hedgeDelay(m *mirror, size int) time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.est.quantile(0.95, 16)
	if !ok {
		d = 4 * m.est.expected(size)
	}
	if m.peer {
		return max(3*d, peerHedgeMin)
	}
	return max(d, s.opt.HedgeMin)
}

// hedgeAfter is how long a request to m runs before the round hedges it: its hedge
// delay, but never more than 4x what the best other mirror in full standing would take
// (2x while m is on probation). A tarpit's own p95 grows with every stall it is caught
// in; hedging it by that would wait longer each time.
func (s *MirrorSet) hedgeAfter(m *mirror, size int) time.Duration {
	d := s.hedgeDelay(m, size)
	if m.peer {
		return d
	}
	factor := time.Duration(4)
	if m.onProbation() {
		factor = 2
	}
	for _, o := range s.snapshot() {
		if o == m || o.peer {
			continue
		}
		o.mu.Lock()
		if o.state == stateUp && o.probation == 0 {
			d = min(d, max(factor*o.est.expected(size), s.opt.HedgeMin))
		}
		o.mu.Unlock()
	}
	return d
}

// refundHedges gives n hedges back to the budget (up to its burst).
func (s *MirrorSet) refundHedges(n int) {
	if n == 0 {
		return
	}
	s.mu.Lock()
	s.tokens = math.Min(s.tokens+float64(n), hedgeBurst)
	s.mu.Unlock()
}

// takeHedge spends one hedge from the budget, which grows by HedgeFraction per request.
func (s *MirrorSet) takeHedge() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tokens >= 1 {
		s.tokens--
		return true
	}
	return false
}

func (s *MirrorSet) earnHedge() {
	if s.opt.HedgeFraction < 0 {
		return
	}
	s.mu.Lock()
	s.tokens = math.Min(s.tokens+s.opt.HedgeFraction, hedgeBurst)
	s.mu.Unlock()
}

// Fetch returns the verified chunk from the first mirror that has it. When every mirror
// fails, it waits and retries under the Wait policy, so reads resume by themselves when
// a mirror comes back.
func (s *MirrorSet) Fetch(ctx context.Context, ref chunk.Ref) (Fetched, error) {
	var out Fetched
	waiting := false
	defer func() {
		if waiting {
			s.opt.Metrics.Waiting(-1)
		}
	}()
	err := s.opt.Wait.Do(ctx, "chunk "+ref.ID.String()[:16], func(ctx context.Context) error {
		var err error
		out, err = s.round(ctx, ref)
		if err != nil && !waiting && ctx.Err() == nil {
			waiting = true
			s.opt.Metrics.Waiting(1)
		}
		return err
	})
	return out, err
}

type attemptResult struct {
	m     *mirror
	f     Fetched
	err   error
	hedge bool
}

// round asks the mirrors for ref once each at most: the best first, the next at once
// when one fails, and a second one early (a hedge) when the first runs long.
func (s *MirrorSet) round(ctx context.Context, ref chunk.Ref) (Fetched, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the requests that lost
	size := int(ref.Stored)
	if size <= 0 {
		size = int(ref.Len) / 2
	}
	s.earnHedge()
	results := make(chan attemptResult, s.Len()+1)
	var tried []*mirror
	running := 0
	launch := func(m *mirror, hedge bool) {
		tried = append(tried, m)
		running++
		go func() {
			f, err := s.attempt(ctx, m, ref, false)
			select {
			case results <- attemptResult{m, f, err, hedge}:
			case <-ctx.Done(): // the round is over (another answered): nobody reads
			}
		}()
	}
	first := s.choosePeer(size, nil)
	if first == nil {
		first = s.choose(size, nil)
	}
	if first == nil {
		return Fetched{}, errors.New("no mirrors")
	}
	if s.Len() == 1 && !first.peer {
		// Nothing to fail over or hedge to: ask in this goroutine, without the hedge
		// timer (a cold read makes thousands of these requests a second).
		f, err := s.attempt(ctx, first, ref, false)
		switch {
		case err == nil:
			s.remember(ref)
			return f, nil
		case ctx.Err() != nil:
			return Fetched{}, unanswered(ctx, ref, []*mirror{first})
		}
		return Fetched{}, fmt.Errorf("chunk %s: every mirror failed: %s", ref.ID, err.Error())
	}
	launch(first, false)
	// While nothing answers, the round hedges again and again, each time to the next
	// mirror, after the hedge delay of the one asked last: ten tarpits in a row cost ten
	// hedge delays, not ten attempt timeouts. A hedge takes a token from the budget, and
	// a hedge that wins gives back the round's tokens: it stood in for requests that
	// stalled, and the budget is there to bound the hedges that were not needed. A
	// mirror on probation is hedged early and without a token.
	var hedge <-chan time.Time
	last, lastAt := first, time.Now()
	taken := 0
	var timer *time.Timer
	if s.opt.HedgeFraction > 0 {
		timer = time.NewTimer(s.hedgeAfter(first, size))
		defer timer.Stop()
		hedge = timer.C
	}
	var errs []string
	for running > 0 {
		select {
		case r := <-results:
			running--
			if r.err == nil {
				if r.hedge {
					s.opt.Metrics.Hedge(true)
					s.refundHedges(taken)
				}
				s.remember(ref)
				return r.f, nil
			}
			if ctx.Err() != nil {
				return Fetched{}, unanswered(ctx, ref, tried)
			}
			errs = append(errs, r.err.Error())
			if next := s.choose(size, tried); next != nil {
				if !r.m.peer { // a peer without the chunk is normal, not a failover
					s.opt.Metrics.Failover()
				}
				launch(next, false)
				last, lastAt = next, time.Now()
				if timer != nil {
					timer.Reset(s.hedgeAfter(next, size))
					hedge = timer.C
				}
			}
		case <-hedge:
			next := s.choose(size, tried)
			if next == nil {
				hedge = nil // every mirror is asked already
				continue
			}
			// Out of budget, a request that has run 4x its hedge delay is presumed stalled
			// and rescued anyway: a burst of stalls must not leave every later read with no
			// hedge at all.
			after := s.hedgeAfter(last, size)
			free := last.onProbation() || time.Since(lastAt) >= 4*after
			if !free && !s.takeHedge() {
				timer.Reset(max(after/2, s.opt.HedgeMin)) // look again soon
				continue
			}
			if !free {
				taken++
			}
			s.opt.Metrics.Hedge(false)
			last.mu.Lock()
			last.hedges++
			last.mu.Unlock()
			launch(next, true)
			last, lastAt = next, time.Now()
			timer.Reset(s.hedgeAfter(next, size))
		case <-ctx.Done():
			return Fetched{}, unanswered(ctx, ref, tried)
		}
	}
	return Fetched{}, fmt.Errorf("chunk %s: every mirror failed: %s", ref.ID, strings.Join(errs, "; "))
}

// unanswered is the error of a round whose context ended before any mirror answered: it
// wraps the context's error (callers test it with errors.Is) and names the mirrors that
// were still being waited on, so a reader's EIO says where it stalled.
func unanswered(ctx context.Context, ref chunk.Ref, tried []*mirror) error {
	names := make([]string, len(tried))
	for i, m := range tried {
		names[i] = m.name
	}
	return fmt.Errorf("chunk %s: no answer from %s: %w", ref.ID, strings.Join(names, ", "), ctx.Err())
}

// remember keeps a small chunk that verified as the probe for mirrors coming back.
func (s *MirrorSet) remember(ref chunk.Ref) {
	if ref.Stored <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.known == nil || ref.Stored < s.known.Stored {
		r := ref
		s.known = &r
	}
}

// attempt fetches ref from m, verifies it, and books the outcome on m. through asks a
// peer to fetch a chunk it lacks (peers.go).
func (s *MirrorSet) attempt(ctx context.Context, m *mirror, ref chunk.Ref, through bool) (Fetched, error) {
	timeout := s.opt.AttemptTimeout
	if m.peer {
		timeout = min(timeout, s.opt.PeerTimeout)
	}
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	m.mu.Lock()
	m.inflight++
	m.requests++
	busyAtStart := m.inflight
	id := m.beginAttempt(start)
	m.mu.Unlock()
	raw, err := s.get(actx, m, ref, through)
	var plain []byte
	corrupt := false
	if err == nil {
		plain, err = chunk.Decode(nil, ref.ID, int(ref.Len), raw)
		if err != nil {
			corrupt = true
			err = fmt.Errorf("%s: %w", m.name, err) // the error names who served it
		}
	}
	var tooLarge *TooLargeError
	if errors.As(err, &tooLarge) {
		corrupt = true // a mirror sending more than the index says is lying too
	}
	d := time.Since(start)
	m.mu.Lock()
	shared := (busyAtStart + m.inflight + 1) / 2 // requests in flight beside this one, on average
	m.inflight--
	m.endAttempt(id)
	switch {
	case err == nil:
		m.bytes += int64(len(raw))
		m.est.observe(len(raw), d, shared)
		m.sawChunk(true)
		if m.state == stateDown { // tried as a last resort, and it answered: it is back
			m.readmit()
			s.logHealth("%s %s is back (served a chunk)", m.kind(), m.name)
		}
		m.served()
	case ctx.Err() != nil, errors.Is(err, context.DeadlineExceeded):
		// Cancelled because another mirror answered first (or the reader left), or it
		// stalled past the attempt timeout: it was at least this slow, which its estimate
		// should know, so the ranking keeps real traffic off it after it is readmitted.
		if size := int(ref.Stored); size > 0 && d > m.est.expectedWith(size, shared-1) {
			m.est.observe(size, d, shared)
		}
	}
	m.mu.Unlock()
	switch {
	case err == nil:
		s.opt.Metrics.Request(m.name, "ok", len(raw), d)
		return Fetched{Raw: raw, Plain: plain}, nil
	case ctx.Err() != nil:
		s.opt.Metrics.Request(m.name, "cancelled", 0, d)
		return Fetched{}, ctx.Err()
	case corrupt:
		s.opt.Metrics.Request(m.name, "corrupt", 0, d)
	case m.peer && isPeerMiss(err):
		s.missed(m, d, shared)
		s.opt.Metrics.Request(m.name, "miss", 0, d)
		return Fetched{}, err // normal for a peer: not a failure
	default:
		s.opt.Metrics.Request(m.name, "error", 0, d)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("%s: no answer within %s", m.name, timeout)
	}
	s.demote(m, ref, err, corrupt)
	return Fetched{}, err
}

// Chunk returns a chunk's stored bytes, verified (MirrorSet is also a Store).
func (s *MirrorSet) Chunk(ctx context.Context, ref chunk.Ref) ([]byte, error) {
	f, err := s.Fetch(ctx, ref)
	return f.Raw, err
}

// File returns a metadata file from the best mirror that has it, trying the others in
// order when one fails. It does not wait for mirrors to come back: callers of File
// (loading an index) have their own policy.
func (s *MirrorSet) File(ctx context.Context, name string, max int64) ([]byte, error) {
	b, _, err := s.FileFrom(ctx, name, max)
	return b, err
}

// FileFrom is File that also says which mirror served the file (for messages such as the
// boot's "serves debian version 7 from URL").
func (s *MirrorSet) FileFrom(ctx context.Context, name string, max int64) ([]byte, string, error) {
	var tried []*mirror
	var errs []error
	notFound := 0
	pick := metadataPick(ctx)
	for {
		m := s.choose(512, tried)
		if m == nil {
			break
		}
		tried = append(tried, m)
		if pick != nil && !pick.allowed(m) {
			continue
		}
		// A mirror that stalls gets the attempt timeout, like a chunk request, and the
		// next mirror is asked.
		actx, cancel := context.WithTimeout(ctx, s.opt.AttemptTimeout)
		b, err := m.store.File(actx, name, max)
		cancel()
		if err == nil {
			if pick != nil {
				pick.answered(s, m)
			}
			return b, m.name, nil
		}
		if ctx.Err() != nil {
			if pick != nil {
				pick.stalled(s, m) // the load's own deadline ended it: blame m, ask another next
			}
			return nil, "", ctx.Err()
		}
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%s: %s: no answer within %s", m.name, name, s.opt.AttemptTimeout)
		}
		var tl *TooLargeError
		switch {
		case errors.Is(err, ErrNotFound):
			notFound++ // a mirror without the file is not failing
		case errors.As(err, &tl):
		default:
			s.demote(m, chunk.Ref{}, err, false)
		}
		errs = append(errs, err)
	}
	if notFound == len(errs) && notFound > 0 {
		return nil, "", fmt.Errorf("%s: %w on any of %d mirrors", name, ErrNotFound, notFound)
	}
	if len(errs) == 0 {
		return nil, "", fmt.Errorf("%s: no mirror left to ask (%d tried and set aside)", name, len(tried))
	}
	return nil, "", errors.Join(errs...)
}
