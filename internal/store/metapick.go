package store

import (
	"context"
	"slices"
	"sync"

	"github.com/nowhere-boot/nowhere/internal/chunk"
)

// A MetadataPick, carried by a context, makes a MirrorSet serve every metadata file of
// one load (a latest pointer, then its index) from one mirror, skipping the mirrors in
// Exclude, and records which mirror that was. A loader that verifies what it fetched
// (image.LoadVerified) can then blame the mirror whose answer failed verification and
// load again from the next: one lying mirror never stops a mount or a boot.
type MetadataPick struct {
	Exclude []string // mirror names not to ask

	mu      sync.Mutex
	set     *MirrorSet
	name    string // the mirror that answered first ("": none yet)
	waitFor string // the mirror asked when the load's deadline ended it, before any answered
}

type metadataPickKey struct{}

// WithMetadataPick returns ctx carrying p.
func WithMetadataPick(ctx context.Context, p *MetadataPick) context.Context {
	return context.WithValue(ctx, metadataPickKey{}, p)
}

func metadataPick(ctx context.Context) *MetadataPick {
	p, _ := ctx.Value(metadataPickKey{}).(*MetadataPick)
	return p
}

// Mirror is the name of the mirror that served the load's files ("": no mirror set
// served any).
func (p *MetadataPick) Mirror() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.name
}

// Mirrors is how many mirrors the set that served has (0: none served).
func (p *MetadataPick) Mirrors() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.set == nil {
		return 0
	}
	n := 0
	for _, m := range p.set.snapshot() {
		if !m.peer {
			n++
		}
	}
	return n
}

// Stalled is the mirror the load was waiting on when its deadline ended it, before any
// mirror answered ("": none). The loader moves on to the next mirror (Demote it first).
func (p *MetadataPick) Stalled() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waitFor
}

// Demote demotes the mirror that stalled the load (as a failed request does, not as a
// liar): the reads that follow try it last.
func (p *MetadataPick) Demote(err error) {
	p.mu.Lock()
	set, name := p.set, p.waitFor
	p.mu.Unlock()
	if set == nil || name == "" {
		return
	}
	for _, m := range set.snapshot() {
		if m.name == name {
			set.demote(m, chunk.Ref{}, err, false)
		}
	}
}

func (p *MetadataPick) stalled(set *MirrorSet, m *mirror) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.name == "" {
		p.set, p.waitFor = set, m.name
	}
}

// Distrust demotes the mirror that served as hard as one that serves a corrupt chunk:
// what it sent failed verification with err (which names the file).
func (p *MetadataPick) Distrust(err error) {
	p.mu.Lock()
	set, name := p.set, p.name
	p.mu.Unlock()
	if set == nil {
		return
	}
	for _, m := range set.snapshot() {
		if m.name == name {
			set.distrust(m, err)
		}
	}
}

// allowed says whether the load may ask m, pinning it to the first mirror that answers.
func (p *MetadataPick) allowed(m *mirror) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.name != "" {
		return m.name == p.name
	}
	return !slices.Contains(p.Exclude, m.name)
}

// answered records that m of set served a file of the load.
func (p *MetadataPick) answered(set *MirrorSet, m *mirror) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.name == "" {
		p.set, p.name = set, m.name
	}
}
