// Package pack turns an image stream into chunks in a store and an index describing it.
// The stream is read once, in order; hashing, compression and writing run on all cores;
// memory is bounded by a fixed number of chunks in flight, whatever the image size.
package pack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/fstype"
	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// Options control a pack.
type Options struct {
	Name     string
	Spec     chunk.Spec
	Version  uint64    // 0: one more than the newest version in the store
	Created  time.Time // zero: now
	Expires  time.Time // zero: never
	Workers  int       // default: number of CPUs
	Progress func(read int64)
	Signer   Signer           // signs the index and the latest pointer; nil: unsigned
	FSAware  bool             // cut at file-data boundaries when r is a known filesystem (chunker.go)
	Warn     func(msg string) // told when FSAware cannot be honoured for a broken image
}

// Result is what a pack did.
type Result struct {
	Index     *index.Index
	IndexFile []byte
	FSType    fstype.Type

	Chunks    int   // data entries in the index
	Unique    int   // distinct chunks among them
	New       int   // chunks this pack wrote
	Existing  int   // distinct chunks that were already stored
	Zero      int   // zero-run entries
	ZeroBytes int64 // bytes covered by zero runs
	Read      int64 // bytes read from the image
	Stored    int64 // compressed bytes this pack wrote
	Elapsed   time.Duration
}

type job struct {
	seq   int
	piece chunk.Piece
	buf   *[]byte
}

type done struct {
	seq   int
	entry index.Entry
	wrote int64 // bytes written (0 when the chunk existed)
	first bool  // first occurrence of this ID in this pack
	buf   *[]byte
}

// seen tracks chunk IDs already handled in this pack, so a chunk repeated in the image is
// hashed again but compressed and written once.
type seen struct {
	mu sync.Mutex
	m  map[chunk.ID]*pending
}

type pending struct {
	ready  chan struct{}
	stored uint32
	err    error
}

// Run packs the image read from r into w and publishes its index as the newest version
// of opt.Name: chunks first, then the versioned index, then the latest pointer, so a
// reader never sees an image whose chunks are not all stored.
func Run(ctx context.Context, r io.Reader, w store.Writer, opt Options) (*Result, error) {
	start := time.Now()
	if err := index.ValidName(opt.Name); err != nil {
		return nil, err
	}
	version := opt.Version
	if version == 0 {
		v, err := NextVersion(ctx, w, opt.Name)
		if err != nil {
			return nil, err
		}
		version = v
	}
	head, stream, err := source(r)
	if err != nil {
		return nil, err
	}
	res := &Result{FSType: fstype.Detect(head)}
	ck, err := opt.chunker(r, res.FSType)
	if err != nil {
		return nil, err
	}
	workers := opt.Workers
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	// Hashing and compressing use at most workers cores (cpu slots), but more goroutines
	// than that carry chunks through the pipeline: writing a chunk file waits on the
	// filesystem (directory locks, journal), and while one goroutine waits another can
	// compress. With goroutines == cores every such wait left a core idle.
	cpu := make(chan struct{}, workers)
	goroutines := workers * ioPerWorker

	// Bounded memory: at most inflight chunk buffers exist at once.
	inflight := 2 * goroutines
	bufs := make(chan *[]byte, inflight)
	for i := 0; i < inflight; i++ {
		b := make([]byte, 0, ck.MaxLen())
		bufs <- &b
	}
	jobs := make(chan job, inflight)
	results := make(chan done, inflight)
	sn := &seen{m: make(map[chunk.ID]*pending)}
	var entries []index.Entry

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { // read and cut, in order
		defer close(jobs)
		sp := chunk.NewSplitter(stream, ck)
		for seq := 0; ; seq++ {
			p, err := sp.Next()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("reading image at offset %d: %w", sp.Offset(), err)
			}
			j := job{seq: seq, piece: p}
			if !p.Zero {
				select {
				case j.buf = <-bufs:
				case <-gctx.Done():
					return gctx.Err()
				}
				*j.buf = append((*j.buf)[:0], p.Data...)
				j.piece.Data = *j.buf
			}
			select {
			case jobs <- j:
			case <-gctx.Done():
				return gctx.Err()
			}
			if opt.Progress != nil {
				opt.Progress(sp.Offset())
			}
		}
	})
	var wg sync.WaitGroup
	for i := 0; i < goroutines; i++ {
		wg.Add(1)
		g.Go(func() error {
			defer wg.Done()
			var enc []byte // reused: PutChunk does not keep the slice
			for j := range jobs {
				d, err := process(gctx, w, sn, cpu, &enc, j)
				if err != nil {
					return err
				}
				select {
				case results <- d:
				case <-gctx.Done():
					return gctx.Err()
				}
			}
			return nil
		})
	}
	go func() { wg.Wait(); close(results) }()
	fl := newFlusher(w)
	defer fl.wait()
	g.Go(func() error { // collect in order
		waiting := make(map[int]done)
		next := 0
		for d := range results {
			waiting[d.seq] = d
			for {
				d, ok := waiting[next]
				if !ok {
					break
				}
				delete(waiting, next)
				next++
				entries = append(entries, d.entry)
				res.account(d)
				fl.wrote(res.Stored)
				if d.buf != nil {
					bufs <- d.buf
				}
			}
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	// The pipeline's goroutines may all finish before noticing a cancellation (a short
	// image, or one big zero run): a cancelled pack must still not publish.
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	var size int64
	if n := len(entries); n > 0 {
		size = entries[n-1].End()
	}
	res.Read = size
	created := opt.Created
	if created.IsZero() {
		created = time.Now()
	}
	ix := &index.Index{
		Name: opt.Name, Version: version, Created: created.UTC().Truncate(time.Second),
		Expires: opt.Expires, Size: size, Chunking: ck.Params(), Entries: entries,
	}
	file, err := index.Encode(ix)
	if err != nil {
		return nil, err
	}
	fl.wait()
	if file, err = PublishSigned(ctx, w, ix, file, opt.Signer); err != nil {
		return nil, err
	}
	res.Index, res.IndexFile = ix, file
	res.Elapsed = time.Since(start)
	return res, nil
}

// ioPerWorker is how many pipeline goroutines share one cpu slot (see Run).
const ioPerWorker = 4

// process hashes a piece and, for a chunk not yet stored, compresses and writes it. enc is
// the goroutine's compression buffer. Only hashing and compression hold a cpu slot.
func process(ctx context.Context, w store.Writer, sn *seen, cpu chan struct{}, enc *[]byte, j job) (done, error) {
	d := done{seq: j.seq, buf: j.buf}
	p := j.piece
	d.entry = index.Entry{Off: p.Off, Len: uint32(p.Len), Zero: p.Zero}
	if p.Zero {
		return d, nil
	}
	if err := acquire(ctx, cpu); err != nil {
		return d, err
	}
	id := chunk.Sum(p.Data)
	<-cpu
	d.entry.ID = id

	sn.mu.Lock()
	pd, dup := sn.m[id]
	if !dup {
		pd = &pending{ready: make(chan struct{})}
		sn.m[id] = pd
	}
	sn.mu.Unlock()
	if dup {
		select {
		case <-pd.ready:
		case <-ctx.Done():
			return d, ctx.Err()
		}
		d.entry.Stored = pd.stored
		return d, pd.err
	}
	d.first = true
	defer close(pd.ready)
	size, ok, err := w.HasChunk(ctx, id)
	if err != nil {
		pd.err = fmt.Errorf("store %s: %w", w, err)
		return d, pd.err
	}
	if !ok {
		if err := acquire(ctx, cpu); err != nil {
			pd.err = err
			return d, err
		}
		*enc = chunk.Encode((*enc)[:0], p.Data)
		<-cpu
		if _, err := w.PutChunk(ctx, id, *enc); err != nil {
			pd.err = err
			return d, err
		}
		size = int64(len(*enc))
		d.wrote = size
	}
	pd.stored = uint32(size)
	d.entry.Stored = pd.stored
	return d, nil
}

// acquire takes a cpu slot, unless the pack is being cancelled.
func acquire(ctx context.Context, cpu chan struct{}) error {
	select {
	case cpu <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *Result) account(d done) {
	switch {
	case d.entry.Zero:
		r.Zero++
		r.ZeroBytes += int64(d.entry.Len)
	default:
		r.Chunks++
		if d.first {
			r.Unique++
			if d.wrote > 0 {
				r.New++
				r.Stored += d.wrote
			} else {
				r.Existing++
			}
		}
	}
}
