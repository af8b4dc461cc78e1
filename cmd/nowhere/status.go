package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/nowhere-boot/nowhere/internal/image"
	"github.com/nowhere-boot/nowhere/internal/profile"
	"github.com/nowhere-boot/nowhere/internal/store"
	"github.com/nowhere-boot/nowhere/internal/units"
)

// statusName is the file a mount serves beside the image with its current status, and
// statusJSONName the same as JSON (status --json).
const (
	statusName     = ".status"
	statusJSONName = ".status.json"
)

// profileName is the file a mount serves beside the image with the chunks read so far, in
// the order of their first read (a profile trace: nowhere profile record).
const profileName = ".profile"

func newStatusCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status MOUNTPOINT",
		Short: "Show how a mount is doing: reads, cache, and each mirror's state and speed",
		Long: `Status prints the report a running 'nowhere mount' keeps in MOUNTPOINT/.status:
reads served and waiting, the disk cache, and every mirror with its state (up, down,
bad), latency, throughput, requests and failures. 'kill -USR1 PID' makes the mount
log a one-line summary instead.`,
		Example: `  nowhere status /mnt/nowhere
  nowhere status --json /mnt/nowhere`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runStatus(args[0], asJSON) },
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (sizes in bytes, times in milliseconds; the mirrors best first)")
	return cmd
}

func runStatus(mnt string, asJSON bool) error {
	name := statusName
	if asJSON {
		name = statusJSONName
	}
	b, err := os.ReadFile(filepath.Join(mnt, name))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("status %s: no %s: not a nowhere mount (or one older than status --json)", mnt, name)
		}
		return fmt.Errorf("status %s: %w", mnt, unwrapPathError(err))
	}
	_, err = os.Stdout.Write(b)
	return err
}

// mountStatus renders what a mount knows about itself.
type mountStatus struct {
	img      *openedImage
	reader   *image.Reader
	sources  *sourceOptions
	started  time.Time
	prefetch *profile.Prefetcher // nil: no profile, or --prefetch 0
	rec      *profile.Recorder
}

func (s *mountStatus) report() []byte {
	var b bytes.Buffer
	ix := s.img.index
	st := s.reader.Snapshot()
	fmt.Fprintf(&b, "image:   %s version %d (%s), mounted %s ago\n", ix.Name, ix.Version, units.Bytes(ix.Size),
		time.Since(s.started).Round(time.Second))
	fmt.Fprintf(&b, readsLine, st.Reads,
		units.Bytes(st.ReadBytes), st.Waiting, st.Errors, st.Fetches, units.Bytes(st.FetchedBytes))
	if p := s.prefetch; p != nil {
		ps := p.Stats()
		state := "running"
		if ps.Finished {
			state = "done"
		}
		fmt.Fprintf(&b, "profile: %d chunks, %s: %d prefetched (%s) in %s, %d in flight, %s held; reads: %d prefetched, %d joined a prefetch, %d early, %d outside the profile\n",
			ps.Queued, state, ps.Done, units.Bytes(ps.Bytes), ps.Elapsed.Round(time.Millisecond), ps.Started-ps.Done-ps.Failed, units.Bytes(ps.Held),
			ps.Hits, ps.Joined, ps.Early, ps.Outside)
	} else if n := len(ix.Profile.Entries); n > 0 {
		fmt.Fprintf(&b, "profile: %s, not prefetched (--prefetch 0)\n", units.Count(n, "chunk"))
	}
	if s.rec != nil {
		read := s.rec.Trace()
		line := fmt.Sprintf("read:    %d chunks (%s)", len(read.Items), units.Bytes(read.Bytes()))
		if len(ix.Profile.Entries) > 0 {
			c := profile.Measure(profile.FromIndex(ix), read)
			line += fmt.Sprintf(", %.1f%% of them in the profile", 100*c.Fraction())
		}
		b.WriteString(line + "\n")
	}
	if c := s.sources.cache; c != nil {
		cs := c.Stats()
		quota := "no limit"
		if cs.Quota > 0 {
			quota = units.Bytes(cs.Quota)
		}
		fmt.Fprintf(&b, "cache:   %s: %d chunks, %s of %s\n", c.Dir(), cs.Chunks, units.Bytes(cs.Bytes), quota)
	}
	b.WriteString("mirrors:\n")
	writeMirrorTable(&b, s.sources.set.Status())
	return b.Bytes()
}

// statusJSON is what .status.json holds: the report's figures, sizes in bytes.
type statusJSON struct {
	Image     string       `json:"image"`
	Version   uint64       `json:"version"`
	Size      int64        `json:"size_bytes"`
	UptimeMS  int64        `json:"mounted_ms"`
	Reads     int64        `json:"reads"`
	ReadBytes int64        `json:"read_bytes"`
	Waiting   int64        `json:"waiting"`
	Failed    int64        `json:"failed"`
	Fetches   int64        `json:"chunks_fetched"`
	Fetched   int64        `json:"fetched_bytes"`
	Cache     *cacheJSON   `json:"cache,omitempty"`
	Mirrors   []mirrorJSON `json:"mirrors"`
}

type cacheJSON struct {
	Dir    string `json:"dir"`
	Chunks int64  `json:"chunks"`
	Bytes  int64  `json:"bytes"`
	Quota  int64  `json:"quota_bytes"` // 0: no limit
}

// reportJSON renders what report does, as JSON.
func (s *mountStatus) reportJSON() []byte {
	ix := s.img.index
	st := s.reader.Snapshot()
	out := statusJSON{
		Image: ix.Name, Version: ix.Version, Size: ix.Size, UptimeMS: time.Since(s.started).Milliseconds(),
		Reads: int64(st.Reads), ReadBytes: int64(st.ReadBytes), Waiting: int64(st.Waiting), Failed: int64(st.Errors),
		Fetches: int64(st.Fetches), Fetched: int64(st.FetchedBytes),
		Mirrors: mirrorsJSON(s.sources.set.Status()),
	}
	if c := s.sources.cache; c != nil {
		cs := c.Stats()
		out.Cache = &cacheJSON{Dir: c.Dir().String(), Chunks: int64(cs.Chunks), Bytes: int64(cs.Bytes), Quota: int64(cs.Quota)}
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return []byte(fmt.Sprintf("{\"error\": %q}\n", err))
	}
	return append(b, '\n')
}

// readsLine is the report's line about reads; umount reads "N waiting" back from it
// (waitingInReport).
const readsLine = "reads:   %d (%s), %d waiting, %d failed; %d chunks fetched (%s)\n"

// waitingInReport returns the reads a status report says are waiting (0: none, or no
// such line).
func waitingInReport(report []byte) int {
	for line := range strings.SplitSeq(string(report), "\n") {
		if !strings.HasPrefix(line, "reads:") {
			continue
		}
		_, after, ok := strings.Cut(line, "), ")
		if !ok {
			return 0
		}
		var n int
		if _, err := fmt.Sscanf(after, "%d waiting", &n); err != nil {
			return 0
		}
		return n
	}
	return 0
}

// line is the one-line summary SIGUSR1 logs.
func (s *mountStatus) line() string {
	st := s.reader.Snapshot()
	var ms []string
	for _, m := range s.sources.set.Status() {
		ms = append(ms, fmt.Sprintf("%s %s %s", m.Name, m.State, m.Latency.Round(100*time.Microsecond)))
	}
	return fmt.Sprintf("status: %d reads (%s), %d waiting, %d failed; mirrors: %s", st.Reads,
		units.Bytes(st.ReadBytes), st.Waiting, st.Errors, strings.Join(ms, ", "))
}

func writeMirrorTable(w io.Writer, ms []store.MirrorStatus) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  RANK\tSTATE\tLATENCY\tP50\tP95\tTHROUGHPUT\tREQUESTS\tFAILED\tCORRUPT\tHEDGED\tRECEIVED\tMIRROR")
	for i, m := range ms {
		name := m.Name
		if m.Peer {
			name += fmt.Sprintf(" (LAN peer, had %.0f%% of what it was asked)", 100*m.HitRatio)
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\n", i+1, m.State, dur(m.Latency), dur(m.P50), dur(m.P95),
			rate(m.Throughput), m.Requests, m.Failures, m.Corrupt, m.Hedges, units.Bytes(m.Bytes), name)
	}
	tw.Flush()
	for _, m := range ms {
		if m.State != "up" && m.LastError != "" {
			fmt.Fprintf(w, "  %s: %s\n", m.Name, m.LastError)
		}
	}
}

func dur(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return d.Round(10 * time.Microsecond).String()
}

func rate(bps float64) string {
	if bps == 0 {
		return "-"
	}
	return units.Bytes(int64(bps)) + "/s"
}

// statusFile serves report() as a live file in the mount.
type statusFile struct{ render func() []byte }

func (f statusFile) Size() int64 { return 0 } // unknown: read until EOF (the file is direct I/O)

func (f statusFile) ReadAtContext(ctx context.Context, p []byte, off int64) (int, error) {
	b := f.render()
	if off >= int64(len(b)) {
		return 0, io.EOF
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
