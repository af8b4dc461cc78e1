// Package rootd is the root daemon: the process that serves the image the system runs
// from, as a file in a FUSE mount, from boot to power-off.
//
// It is a separate process (PID 1 becomes the image's init), started by /init
// re-executing itself with argv[0] = "@nowhere": systemd's convention for root storage
// daemons, which its shutdown neither signals nor waits for. Its FUSE mount lives in the
// initramfs root, which after switch_root is out of sight of the new system (not in its
// /proc/mounts, never unmounted by it), and it never opens a file in the root it serves.
package rootd

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
)

// Argv0 marks the process as a root storage daemon (systemd: argv[0][0] == '@').
const Argv0 = "@nowhere"

// Comm is the daemon's process name (ps, pgrep -x, /proc/PID/comm).
const Comm = "nowhere-root"

// Spec is what /init tells the daemon, as JSON on its standard input.
type Spec struct {
	Image   string   `json:"image"`             // STORE/images/NAME[/VERSION]
	Mirrors []string `json:"mirrors,omitempty"` // more base URLs of the store
	DNS     []string `json:"dns,omitempty"`     // name servers, for URLs with host names
	// Proxy is the HTTP proxy for every mirror ("": HTTP_PROXY, HTTPS_PROXY and NO_PROXY
	// from the environment, which the kernel fills from its command line).
	Proxy string `json:"proxy,omitempty"`
	// Keys are the trusted publisher keys (minisign public keys, base64): the index must
	// be signed by one of them.
	Keys []string `json:"keys,omitempty"`
	// Insecure boots what fails verification (unsigned, another key, expired), warning loudly.
	Insecure bool `json:"insecure,omitempty"`
	// StateFile remembers the highest version accepted per image (rollback protection):
	// on the cache disk when there is one, else in the initramfs' memory.
	StateFile string `json:"state_file,omitempty"`
	// CacheDir keeps fetched chunks (and the index) across boots, within CacheQuota bytes
	// (0: no limit).
	CacheDir   string `json:"cache_dir,omitempty"`
	CacheQuota int64  `json:"cache_quota,omitempty"`
	// Share is the address the chunk cache is served to LAN peers on ("" = not shared);
	// Peers are LAN peers named on the command line (internal/peer).
	Share     string   `json:"share,omitempty"`
	Peers     []string `json:"peers,omitempty"`
	MemCache  int64    `json:"mem_cache"`  // bytes of verified chunks kept in memory
	ReadAhead int64    `json:"read_ahead"` // most bytes fetched ahead of a sequential reader
	// Prefetch is how many chunks of the index's boot profile are fetched at once in the
	// background (0: none).
	Prefetch int `json:"prefetch,omitempty"`
	// Parallel bounds chunk fetches in flight (0: no bound).
	Parallel int `json:"parallel,omitempty"`
	// RecordProfile prints the chunks served, in the order of their first read, on the
	// console (nowhere.profile=record).
	RecordProfile bool `json:"record_profile,omitempty"`
	// Metrics is the address (IP:PORT) to serve Prometheus metrics on, at /metrics
	// (nowhere.metrics=; "" = none). When it cannot be served the daemon goes on without.
	Metrics    string `json:"metrics,omitempty"`
	Mountpoint string `json:"mountpoint"`
	Debug      bool   `json:"debug"`
}

// Ready is what the daemon reports once the image file is served.
type Ready struct {
	Name    string `json:"name"`
	Version uint64 `json:"version"`
	Size    int64  `json:"size"`
	Store   string `json:"store"` // the mirror that served the index (or the cache)
	File    string `json:"file"`  // the image file in the FUSE mount
	// Metrics is the URL of the Prometheus metrics ("" = not served: none asked for, or
	// the address could not be served).
	Metrics string `json:"metrics,omitempty"`
}

// Process is a started daemon.
type Process struct {
	Pid   int
	Ready Ready
}

// Start runs exe as the root daemon and returns once it serves the image (which can take
// as long as the network does: the daemon retries until a mirror answers), or with the
// reason it stopped. Its output goes to out (the console).
func Start(exe string, spec Spec, out *os.File) (*Process, error) {
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		stdinR.Close()
		stdinW.Close()
		return nil, err
	}
	defer readyR.Close()
	cmd := &exec.Cmd{
		Path:       exe,
		Args:       []string{Argv0},
		Env:        append(os.Environ(), "GODEBUG=updatemaxprocs=0"), // no cgroup polling: /sys leaves with switch_root
		Stdin:      stdinR,
		Stdout:     out,
		Stderr:     out,
		ExtraFiles: []*os.File{readyW},
		// Its own session: nothing the new system does to PID 1's session reaches it.
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	err = cmd.Start()
	stdinR.Close()
	readyW.Close()
	if err != nil {
		stdinW.Close()
		return nil, fmt.Errorf("start root daemon: %w", err)
	}
	_, werr := stdinW.Write(append(specJSON, '\n'))
	stdinW.Close()
	if werr != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("root daemon: send spec: %w", werr)
	}
	line, _ := bufio.NewReader(readyR).ReadString('\n')
	ready, err := parseReady(line)
	if err != nil {
		_ = cmd.Process.Kill()
		werr := cmd.Wait()
		if line == "" && werr != nil {
			return nil, fmt.Errorf("root daemon died before it was ready (%v)", werr)
		}
		return nil, err
	}
	// Never waited for: after switch_root the image's init inherits it as a child.
	return &Process{Pid: cmd.Process.Pid, Ready: ready}, nil
}

func parseReady(line string) (Ready, error) {
	line = strings.TrimSpace(line)
	var r Ready
	switch {
	case strings.HasPrefix(line, "ok "):
		if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "ok ")), &r); err != nil {
			return r, fmt.Errorf("root daemon: bad ready message %q", line)
		}
		return r, nil
	case strings.HasPrefix(line, "error: "):
		return r, errors.New(strings.TrimPrefix(line, "error: "))
	case line == "":
		return r, errors.New("root daemon exited before it was ready")
	}
	return r, fmt.Errorf("root daemon: unexpected message %q", line)
}

// readSpec reads the Spec from r (the daemon's standard input).
func readSpec(r io.Reader) (Spec, error) {
	var s Spec
	dec := json.NewDecoder(io.LimitReader(r, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return s, fmt.Errorf("read spec: %w", err)
	}
	if s.Image == "" || s.Mountpoint == "" {
		return s, errors.New("spec names no image or mountpoint")
	}
	return s, nil
}
