package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// StartupProbe bounds the first parallel probe of a mirror set (and the mirror list
// learnt with it) when a command or the boot daemon starts. Probe waits for every
// mirror, so this is what one dead or stalled mirror adds to every start: short, because
// nothing is lost by it — a mirror that has not answered by then is only ranked down and
// re-probed in the background (from 0.5 s on), and reads wait under their own Policy.
// One value for every caller: it had drifted to 3 s in the CLI and 5 s in the boot
// daemon; 3 s is what docs/security.md's measurements of a stalled mirror assume.
const StartupProbe = 3 * time.Second

// OpenOptions say how Open reaches the schemes that need more than a location.
type OpenOptions struct {
	// HTTP is for http:// and https:// stores (client, CA, deadlines).
	HTTP HTTPOptions
	// S3, when set, allows s3://BUCKET[/PREFIX] stores with these options. Nil refuses
	// the scheme: callers without object-store credentials (the boot daemon, a mirror
	// from a store's mirror list) have no business reaching a bucket directly.
	S3 *S3Options
}

// Open is the one place a store location's scheme picks its backend: http(s) URLs,
// s3://BUCKET[/PREFIX] (when opt.S3 allows it) and local directories; any other scheme is
// an error naming what is supported. The CLI's verbs, the mirror set and the boot daemon
// all open their stores here, so a scheme means the same thing everywhere.
func Open(ctx context.Context, loc string, opt OpenOptions) (Store, error) {
	_ = ctx // opening dials nothing today; the context is for backends that will
	switch {
	case strings.HasPrefix(loc, "http://"), strings.HasPrefix(loc, "https://"):
		return NewHTTPWith(loc, opt.HTTP)
	case IsS3(loc) && opt.S3 != nil:
		return NewS3(strings.TrimSuffix(loc, "/"), *opt.S3)
	case strings.Contains(loc, "://"):
		want := "http, https or a directory"
		if opt.S3 != nil {
			want = "http, https, s3 or a directory"
		}
		return nil, fmt.Errorf("store %q: unsupported scheme (want %s)", loc, want)
	}
	return OpenDir(loc)
}

// IsRemote says whether loc names a store reached over the network (http, https, s3)
// rather than a directory.
func IsRemote(loc string) bool { return strings.Contains(loc, "://") }
