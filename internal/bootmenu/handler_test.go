package bootmenu

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/catalog"
	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/server"
)

// publish writes the files a pack leaves for image name (the latest pointer and the
// versions file; the menu reads nothing else).
func publish(t *testing.T, dir, name string, version uint64, size int64) {
	t.Helper()
	p := filepath.Join(dir, "images", name)
	os.MkdirAll(p, 0o755)
	ptr := index.Pointer{Name: name, Version: version, SHA256: [32]byte{1}}
	vs := catalog.Versions{Name: name}
	vs.Put(catalog.Version{Version: version, Size: size, SHA256: [32]byte{1}, Created: time.Now(), Chunking: "fixed:65536"})
	if err := os.WriteFile(filepath.Join(p, "latest"), ptr.Encode(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p, "versions"), vs.Encode(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, url, host string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if host != "" {
		req.Host = host
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestHandlerServesMenuKernelInitrdAndStore(t *testing.T) {
	dir := t.TempDir()
	publish(t, dir, "debian", 3, 512<<20)
	publish(t, dir, "bb", 1, 1<<20)
	os.MkdirAll(filepath.Join(dir, "chunks/abcd"), 0o755)
	os.WriteFile(filepath.Join(dir, "chunks/abcd/x.cacnk"), []byte("chunk"), 0o644)
	kernel := filepath.Join(t.TempDir(), "vmlinuz")
	initrd := filepath.Join(t.TempDir(), "initrd.img")
	os.WriteFile(kernel, []byte("KERNEL"), 0o644)
	os.WriteFile(initrd, []byte("INITRD"), 0o644)
	o := Options{Kernel: kernel, Initrd: initrd, Default: "debian", Append: "console=ttyS0"}
	if err := Check(dir, o); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	srv := httptest.NewServer(Handler(dir, server.Handler(root), o))
	defer srv.Close()

	code, body := get(t, srv.URL+ScriptPath, "")
	if code != 200 {
		t.Fatalf("GET %s: %d %s", ScriptPath, code, body)
	}
	p := parse(t, body)
	if len(p.items) != 3 || !strings.HasPrefix(p.items[0][1], "debian (version 3, 512 MiB)") || !strings.HasPrefix(p.items[1][1], "bb (version 1") {
		t.Errorf("menu items %q: want debian (the default) then bb, then the shell", p.items)
	}
	base := srv.URL // the request's Host
	k := p.targets[p.items[0][0]][1]
	if !strings.HasPrefix(k, "kernel "+base+KernelPath+" ") || !strings.Contains(k, " nowhere.image="+base+"/images/debian ") {
		t.Errorf("kernel line %q: want URLs on %s", k, base)
	}
	// What the menu names is served.
	for path, want := range map[string]string{KernelPath: "KERNEL", InitrdPath: "INITRD", "/chunks/abcd/x.cacnk": "chunk"} {
		if code, body := get(t, srv.URL+path, ""); code != 200 || body != want {
			t.Errorf("GET %s: %d %q", path, code, body)
		}
	}
	// The store's own handler still refuses what it refuses.
	if code, _ := get(t, srv.URL+"/images/../../etc/passwd", ""); code != 400 && code != 404 {
		t.Errorf("path with ..: %d", code)
	}
	// A machine that reached the server by name gets URLs with that name; a forged Host
	// that would inject into the script is refused.
	if _, body := get(t, srv.URL+ScriptPath, "boot.example:8080"); !strings.Contains(body, "kernel http://boot.example:8080/boot/vmlinuz ") {
		t.Errorf("menu for Host boot.example:8080:\n%s", body)
	}
	if code, body := get(t, srv.URL+ScriptPath, "x${y}"); code != 400 {
		t.Errorf("Host x${y}: %d %s", code, body)
	}
	// A new image shows up at once.
	publish(t, dir, "alpine", 1, 1<<20)
	if _, body := get(t, srv.URL+ScriptPath, ""); !strings.Contains(body, "item image2 bb") || !strings.Contains(body, "item image1 alpine") {
		t.Errorf("menu after publishing alpine:\n%s", body)
	}
	resp, err := http.Post(srv.URL+ScriptPath, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST %s: %d", ScriptPath, resp.StatusCode)
	}
}

func TestCheckNamesWhatIsMissing(t *testing.T) {
	dir := t.TempDir()
	if err := Check(dir, Options{}); err == nil || !strings.Contains(err.Error(), "--kernel FILE or put it in the store as boot/vmlinuz") {
		t.Errorf("no kernel: %v", err)
	}
	os.MkdirAll(filepath.Join(dir, "boot"), 0o755)
	os.WriteFile(filepath.Join(dir, "boot/vmlinuz"), []byte("k"), 0o644)
	os.WriteFile(filepath.Join(dir, "boot/initrd.img"), []byte("i"), 0o644)
	if err := Check(dir, Options{}); err != nil {
		t.Errorf("kernel and initramfs in the store: %v", err)
	}
	if err := Check(dir, Options{Kernel: filepath.Join(dir, "nope")}); err == nil || !strings.Contains(err.Error(), "--kernel") {
		t.Errorf("missing --kernel file: %v", err)
	}
	if err := Check(dir, Options{URL: "ftp://x"}); err == nil || !strings.Contains(err.Error(), "--boot-url") {
		t.Errorf("bad --boot-url: %v", err)
	}
}
