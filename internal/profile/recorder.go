package profile

import (
	"context"
	"sync"

	"github.com/nowhere-boot/nowhere/internal/index"
)

// Recorder notes which entries of an image are read, in the order of their first read.
// It costs a binary search and a lock per read, and one bool per entry.
type Recorder struct {
	ix *index.Index

	mu      sync.Mutex
	seen    []bool
	order   []int
	stopped bool
	changed chan struct{} // closed when an entry is added
}

// NewRecorder returns a recorder for reads of ix.
func NewRecorder(ix *index.Index) *Recorder {
	return &Recorder{ix: ix, seen: make([]bool, len(ix.Entries)), changed: make(chan struct{})}
}

// Note records a read of n bytes at off.
func (r *Recorder) Note(off int64, n int) {
	if n <= 0 || off < 0 || off >= r.ix.Size {
		return
	}
	end := min(off+int64(n), r.ix.Size)
	first, last := r.ix.Find(off), r.ix.Find(end-1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return
	}
	added := false
	for i := first; i <= last; i++ {
		if !r.seen[i] && !r.ix.Entries[i].Zero {
			r.seen[i] = true
			r.order = append(r.order, i)
			added = true
		}
	}
	if added {
		close(r.changed)
		r.changed = make(chan struct{})
	}
}

// Stop ends the recording: later reads are not noted.
func (r *Recorder) Stop() {
	r.mu.Lock()
	r.stopped = true
	r.mu.Unlock()
}

// Len returns how many entries were recorded.
func (r *Recorder) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.order)
}

// Since returns the entries recorded after the first k, and a channel closed when more
// come.
func (r *Recorder) Since(k int) ([]int, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if k > len(r.order) {
		k = len(r.order)
	}
	return append([]int(nil), r.order[k:]...), r.changed
}

// Trace returns the recording so far as a one-boot trace.
func (r *Recorder) Trace() *Trace {
	entries, _ := r.Since(0)
	tr, _ := FromEntries(r.ix, entries) // entries come from ix
	return tr
}

// Content is what a FUSE file serves (fusefs.Content): reads with a context, a size.
type Content interface {
	ReadAtContext(ctx context.Context, p []byte, off int64) (int, error)
	Size() int64
}

// Recording is c with every read noted by rec.
type Recording struct {
	Content
	rec *Recorder
}

// Record wraps c so that rec notes its reads.
func Record(c Content, rec *Recorder) *Recording { return &Recording{Content: c, rec: rec} }

// ReadAtContext notes the read, then serves it.
func (r *Recording) ReadAtContext(ctx context.Context, p []byte, off int64) (int, error) {
	r.rec.Note(off, len(p))
	return r.Content.ReadAtContext(ctx, p, off)
}

// slicer is fusefs.Slicer: content that answers a read with views of memory it holds.
type slicer interface {
	ReadSlices(ctx context.Context, vecs [][]byte, off int64, n int) ([][]byte, int, error)
}

// ReadSlices notes the read, then serves it with the wrapped content's ReadSlices, so the
// zero-copy (writev) path survives the wrapping. Content without ReadSlices is read into a
// fresh buffer, which is then the one view.
func (r *Recording) ReadSlices(ctx context.Context, vecs [][]byte, off int64, n int) ([][]byte, int, error) {
	r.rec.Note(off, n)
	if s, ok := r.Content.(slicer); ok {
		return s.ReadSlices(ctx, vecs, off, n)
	}
	p := make([]byte, n)
	k, err := r.Content.ReadAtContext(ctx, p, off)
	return append(vecs, p[:k]), k, err
}

// Unwrap returns the wrapped content (as net/http's ResponseController unwraps writers).
func (r *Recording) Unwrap() Content { return r.Content }
