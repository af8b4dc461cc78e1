package rootd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nowhere-boot/nowhere/internal/boot/bootlog"
	"github.com/nowhere-boot/nowhere/internal/image"
	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/store"
	"github.com/nowhere-boot/nowhere/internal/trust"
)

// newVerifier is the boot's trust policy: the keys /init gathered (kernel command line and
// the initramfs' trusted.pub), the rollback memory, and nowhere.insecure.
func newVerifier(spec Spec, log *bootlog.Log) (*trust.Verifier, error) {
	var keys []trust.PublicKey
	for _, k := range spec.Keys {
		pk, err := trust.ParsePublicKey([]byte(k))
		if err != nil {
			return nil, fmt.Errorf("trusted key %q: %v", k, err)
		}
		keys = append(keys, pk)
	}
	p := trust.Policy{Keys: keys, Insecure: spec.Insecure, Warn: log.Printf, InsecureOption: "nowhere.insecure"}
	if spec.StateFile != "" {
		p.State = trust.OpenState(spec.StateFile)
	}
	if len(keys) == 0 && !spec.Insecure {
		return nil, errors.New("no trusted key: give nowhere.key=PUBLIC_KEY, bake one in with `nowhere initramfs --key FILE`, or boot unsigned images with nowhere.insecure (unsafe)")
	}
	return trust.NewVerifier(p)
}

// Waits between attempts to load the index: short at first (a server coming up), long
// when it keeps failing (a publisher fixing a signature takes minutes).
const (
	indexRetryMin = time.Second
	indexRetryMax = 30 * time.Second
	// indexAttempt bounds one round over all the mirrors.
	indexAttempt = 2 * time.Minute
	// indexRemind repeats an unchanged failure on the console this often, for a console
	// attached later.
	indexRemind = time.Minute
)

// loadIndex fetches the image's index from the first mirror that has it and checks it
// under v. It never gives up: a machine that boots before its server is up waits for it,
// and an index the verifier refuses (unsigned, another key, expired, older) is refused
// with one line saying why, and asked for again with backoff, since a publisher or a
// mirror operator may fix it. A failure is printed at once, then whenever the reason
// changes, and otherwise once a minute.
//
// It also returns the files (latest pointer, index) the accepted index was loaded from,
// as served, for the cache disk to keep.
func loadIndex(src store.Store, loc image.Location, v image.Verifier, log *bootlog.Log) (*index.Index, map[string][]byte) {
	wait := indexRetryMin
	var said string
	var saidAt time.Time
	for {
		ix, files, err := loadIndexOnce(src, loc, v)
		if err == nil {
			return ix, files
		}
		msg := oneLine(err)
		if msg != said || time.Since(saidAt) >= indexRemind {
			if refused(err) {
				log.Printf("refusing to boot %s: %s; asking again, backing off up to %s", loc, msg, indexRetryMax)
			} else {
				log.Printf("cannot fetch the index of %s: %s; retrying until a mirror answers", loc, msg)
			}
			said, saidAt = msg, time.Now()
		} else {
			log.Debugf("index of %s: %s", loc, msg)
		}
		time.Sleep(wait)
		wait = min(2*wait, indexRetryMax)
	}
}

// loadIndexOnce is one attempt of loadIndex.
func loadIndexOnce(src store.Store, loc image.Location, v image.Verifier) (*index.Index, map[string][]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), indexAttempt)
	defer cancel()
	rec := &recorder{Store: src, files: map[string][]byte{}}
	ix, _, err := image.LoadVerified(ctx, rec, loc, store.Policy{Attempts: 1}, v)
	if err != nil {
		return nil, nil, err
	}
	return ix, rec.files, nil
}

// recorder remembers the files it passed on, so those an accepted index came from (and
// only those) can be kept on the cache disk.
type recorder struct {
	store.Store
	mu    sync.Mutex
	files map[string][]byte
}

func (r *recorder) File(ctx context.Context, name string, max int64) ([]byte, error) {
	b, err := r.Store.File(ctx, name, max)
	if err == nil {
		r.mu.Lock()
		r.files[name] = b
		r.mu.Unlock()
	}
	return b, err
}

// refused tells a refusal by the trust policy (or by the pointer checks image.Load makes)
// from a failure to fetch.
func refused(err error) bool {
	var r *trust.RefusedError
	return errors.As(err, &r) || strings.Contains(err.Error(), "refused: ")
}

// oneLine keeps a message on one console line (errors.Join puts one error per line).
func oneLine(err error) string {
	return strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; ")
}
