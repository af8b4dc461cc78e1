package mirrors

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/testutil"
)

// originName is the host name clients use for the origin behind squid. Go never sends
// requests for loopback addresses through a proxy, so the origin needs a name; squid
// resolves it from its own hosts file to 127.0.0.1, and no DNS server is asked.
const originName = "origin.nowhere.test"

// startSquid runs squid (Debian's package, not its system service) on a free loopback
// port with its own configuration, memory cache, logs and pid file in a directory of
// the test. It returns the proxy address and the access log path.
func startSquid(t *testing.T) (string, string) {
	t.Helper()
	bin := testutil.Tool(t, "squid")
	// Not t.TempDir(): squid drops root for the proxy user, which must reach the directory.
	dir, err := os.MkdirTemp("", "nowhere-squid-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	user := ""
	if os.Geteuid() == 0 {
		uid, gid := proxyUser(t)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		user = "cache_effective_user proxy\n"
	}
	addr := freePort(t)
	hosts := filepath.Join(dir, "hosts")
	if err := os.WriteFile(hosts, []byte("127.0.0.1 "+originName+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	access := filepath.Join(dir, "access.log")
	conf := fmt.Sprintf(`http_port %[1]s
pid_filename %[2]s/squid.pid
access_log stdio:%[3]s squid
cache_log %[2]s/cache.log
cache_store_log none
coredump_dir %[2]s
netdb_filename none
pinger_enable off
logfile_rotate 0
buffered_logs off
hosts_file %[4]s
dns_nameservers 127.0.0.1
cache_mem 64 MB
maximum_object_size_in_memory 1 MB
maximum_object_size 1 MB
shutdown_lifetime 0 seconds
max_filedescriptors 4096
http_access allow all
%[5]s`, addr, dir, access, hosts, user)
	cf := filepath.Join(dir, "squid.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	start(t, "squid", nil, bin, "-N", "-f", cf)
	waitHTTP(t, "http://"+addr+"/", 60*time.Second)
	return addr, access
}

// extractVia runs `nowhere extract` with HTTP_PROXY pointing at proxy and returns the
// sha256 of the image it wrote.
func extractVia(t *testing.T, proxy, source string) [32]byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out.img")
	cmd := exec.Command(nowhereBin, "extract", source, out, "--progress", "never", "--timeout", "30s", "--key", publicKey)
	cmd.Env = append(os.Environ(), "HTTP_PROXY=http://"+proxy, "http_proxy=http://"+proxy, "NO_PROXY=", "no_proxy=")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("extract through the proxy: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// chunkFiles counts the chunk files of a store.
func chunkFiles(t *testing.T, st string) int {
	n := 0
	err := filepath.WalkDir(filepath.Join(st, "chunks"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".cacnk") {
			n++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestCachingProxy puts squid between two clients and an origin (nowhere serve, then
// nginx): the second client's reads come from squid's cache, and the origin sees each
// chunk requested exactly once.
func TestCachingProxy(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: no squid")
	}
	st, want := makeStore(t, 12<<20, 8)
	chunks := chunkFiles(t, st)
	chunkGet := regexp.MustCompile(`GET (/chunks/\S+\.cacnk)`)

	for _, origin := range []string{"nowhere serve", "nginx"} {
		t.Run(strings.ReplaceAll(origin, " ", "-"), func(t *testing.T) {
			proxy, squidLog := startSquid(t)
			var base string
			var originLog func() string
			if origin == "nginx" {
				_, u, access := startNginx(t, st)
				base = u
				originLog = func() string { b, _ := os.ReadFile(access); return string(b) }
			} else {
				p, u := serveStore(t, st, "127.0.0.1:0")
				base = u
				originLog = p.output
			}
			source := strings.Replace(base, "127.0.0.1", originName, 1) + "/images/test"

			if sum := extractVia(t, proxy, source); sum != want {
				t.Fatal("first client: wrong content")
			}
			if sum := extractVia(t, proxy, source); sum != want {
				t.Fatal("second client: wrong content")
			}

			// The origin saw every chunk once: the second client was served by squid.
			seen := map[string]int{}
			for _, m := range chunkGet.FindAllStringSubmatch(originLog(), -1) {
				seen[m[1]]++
			}
			if len(seen) != chunks {
				t.Errorf("origin served %d distinct chunks, the store has %d", len(seen), chunks)
			}
			for p, n := range seen {
				if n != 1 {
					t.Errorf("origin served %s %d times", p, n)
				}
			}
			// And squid's log shows the hits (it may write the last lines a moment late).
			hitRe := regexp.MustCompile(`TCP_(MEM_)?HIT/200 .* GET http://` + regexp.QuoteMeta(originName) + `:\d+/chunks/`)
			deadline := time.Now().Add(30 * time.Second)
			for {
				b, _ := os.ReadFile(squidLog)
				hits := len(hitRe.FindAllIndex(b, -1))
				if hits >= chunks {
					t.Logf("%d chunks: origin served each once, squid logged %d hits", chunks, hits)
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("squid logged %d chunk hits, want %d (one per chunk on the second pass):\n%.3000s", hits, chunks, b)
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}
