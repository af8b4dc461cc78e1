package store_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// namedPeer is an in-memory peer: it serves one chunk and counts the requests it gets.
type namedPeer struct {
	name  string
	c     testChunk
	asked atomic.Int64
}

func (p *namedPeer) Chunk(ctx context.Context, ref chunk.Ref) ([]byte, error) {
	p.asked.Add(1)
	if ref.ID != p.c.ref.ID {
		return nil, fmt.Errorf("%s: %w", p.name, store.ErrNotFound)
	}
	return p.c.raw, nil
}

func (p *namedPeer) File(ctx context.Context, name string, max int64) ([]byte, error) {
	return nil, fmt.Errorf("%s: %w", name, store.ErrNotFound)
}

func (p *namedPeer) String() string { return p.name }

// FetchFromPeer must ask the peer it was named, whatever AddPeer and RemovePeer do to the
// set meanwhile. It once found the peer's index in one snapshot of the set and took the
// member at that index from a second one: a peer removed in between made it ask another
// member (or the mirror) or index past the end and panic.
func TestFetchFromPeerWhilePeersChange(t *testing.T) {
	c := newChunk(1, 64)
	mirror := newDir(t)
	put(t, mirror, c)
	set := newSet(t, store.MirrorOptions{}, mirror)
	churn := make([]*namedPeer, 8)
	for i := range churn {
		churn[i] = &namedPeer{name: fmt.Sprintf("http://churn%d.invalid", i), c: c}
		set.AddPeer(churn[i])
	}
	target := &namedPeer{name: "http://target.invalid", c: c}
	set.AddPeer(target)

	// The churner re-adds every peer in turn, the target too, so that peers keep coming
	// before the target in the set's order and its index keeps moving.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		peers := append(churn, target)
		for i := 0; ctx.Err() == nil; i++ {
			p := peers[i%len(peers)]
			set.RemovePeer(p.name)
			set.AddPeer(p)
		}
	}()
	// Several fetchers at once, so that some fall between two of the churner's steps.
	const fetchers, rounds = 4, 5000
	var fetched sync.WaitGroup
	var asked atomic.Int64 // fetches that found the target in the set
	for range fetchers {
		fetched.Add(1)
		go func() {
			defer fetched.Done()
			for range rounds {
				_, err := set.FetchFromPeer(ctx, target.name, c.ref, false)
				switch {
				case err == nil:
					asked.Add(1)
				case strings.Contains(err.Error(), "not a peer of this set"):
					// The target was out of the set for a moment: a fair answer.
				default:
					t.Errorf("FetchFromPeer: %v", err)
					return
				}
			}
		}()
	}
	fetched.Wait()
	cancel()
	wg.Wait()
	if n := target.asked.Load(); n != asked.Load() {
		t.Errorf("the named peer was asked %d times in %d fetches that found it", n, asked.Load())
	}
	for _, p := range churn {
		if n := p.asked.Load(); n != 0 {
			t.Errorf("%s, not the peer named, was asked %d times", p.name, n)
		}
	}
}

// Learn must probe exactly the mirrors it added from the store's mirrors list, whatever
// AddPeer and RemovePeer do meanwhile. It once took them by position (everything after
// the set's length before the Add): a peer removed in between made it skip a new mirror,
// one added in between made it probe a peer as a mirror.
func TestLearnWhilePeersChange(t *testing.T) {
	origin := newDir(t)
	list := "http://127.0.0.1:1/a\nhttp://127.0.0.1:1/b\nhttp://127.0.0.1:1/c\n"
	if err := origin.PutFile(context.Background(), store.MirrorListPath, []byte(list)); err != nil {
		t.Fatal(err)
	}
	c := newChunk(2, 64)
	for round := range 200 {
		set, err := store.NewMirrorSet([]store.Store{origin}, store.MirrorOptions{})
		if err != nil {
			t.Fatal(err)
		}
		peers := make([]*namedPeer, 4)
		for i := range peers {
			peers[i] = &namedPeer{name: fmt.Sprintf("http://peer%d.invalid", i), c: c}
			set.AddPeer(peers[i])
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				p := peers[i%len(peers)]
				set.RemovePeer(p.name)
				set.AddPeer(p)
			}
		}()
		n := set.Learn(context.Background(), store.HTTPOptions{})
		cancel()
		wg.Wait()
		set.Close()
		if n != 3 {
			t.Fatalf("round %d: Learn says it added and probed %d mirrors, want the list's 3", round, n)
		}
	}
}
