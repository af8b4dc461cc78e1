package vm

import (
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestArgsConfineTheGuestToTheRelay(t *testing.T) {
	a := strings.Join(Args(Config{Kernel: "vmlinux", Initrd: "initrd", Memory: 512, CPUs: 2, Append: "quiet",
		Relay: []string{"/usr/bin/nowhere", "vm", "relay", "127.0.0.1:8080"}, Disks: []string{"/tmp/a,b.img"}}, "tcg"), " ")
	for _, want := range []string{
		"-accel tcg", "-m 512", "-smp 2", "-kernel vmlinux", "-initrd initrd", "-append console=ttyS0 quiet", "-no-reboot",
		"-netdev user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:80-cmd:/usr/bin/nowhere vm relay 127.0.0.1:8080",
		"virtio-net-pci,netdev=n0", "virtio-rng-pci", "file=/tmp/a,,b.img,if=virtio,format=raw,index=0",
	} {
		if !strings.Contains(a, want) {
			t.Errorf("qemu args lack %q:\n%s", want, a)
		}
	}
	if a := strings.Join(Args(Config{Kernel: "k", Initrd: "i"}, "tcg"), " "); !strings.Contains(a, "user,id=n0,restrict=on -device") {
		t.Errorf("without a relay the guest must reach nothing: %s", a)
	}
}

// A prompt has no newline; lines end in \r\n on a serial console.
func TestWatchMatchesPromptsAndLines(t *testing.T) {
	r, w := io.Pipe()
	var mu sync.Mutex
	var all strings.Builder
	matches := map[string]time.Duration{}
	cfg := Config{Expect: []*regexp.Regexp{regexp.MustCompile(`login: *$`), regexp.MustCompile(`^MARK-\d+$`)}}
	done := make(chan struct{})
	go func() { watch(r, cfg, time.Now(), &all, &mu, matches); close(done) }()
	io.WriteString(w, "Debian GNU/Linux 12 nowhere ttyS0\r\n\r\nnowhere lo")
	io.WriteString(w, "gin: ")
	io.WriteString(w, "\r\nMARK-")
	io.WriteString(w, "42\r\nnot MARK-1\r\n")
	w.Close()
	<-done
	for _, re := range cfg.Expect {
		if _, ok := matches[re.String()]; !ok {
			t.Errorf("%s did not match", re)
		}
	}
	if !strings.HasSuffix(all.String(), "not MARK-1\r\n") {
		t.Errorf("console copy: %q", all.String())
	}
}

func TestServeCountsAndRelayCarriesHTTP(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "chunks/abcd"), 0o755)
	os.WriteFile(filepath.Join(dir, "chunks/abcd/x.cacnk"), []byte("0123456789"), 0o644)
	srv, err := Serve(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	// What qemu does for a guest connection: a process with the connection on stdin/out.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); Relay(srv.Addr, c, c) }()
		}
	}()
	resp, err := http.Get("http://" + ln.Addr().String() + "/chunks/abcd/x.cacnk")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "0123456789" {
		t.Errorf("through the relay: %q", body)
	}
	if c := srv.Counts(); c.Requests != 1 || c.ChunkRequests != 1 || c.ChunkBytes != 10 {
		t.Errorf("counts = %+v", c)
	}
}

func TestChooseAccelHonoursTheAskedOne(t *testing.T) {
	if a, _ := ChooseAccel("tcg"); a != "tcg" {
		t.Errorf("tcg -> %s", a)
	}
	if _, err := os.Stat("/sys/module/kvm_pvm"); err == nil {
		if a, why := ChooseAccel("auto"); a != "tcg" || !strings.Contains(why, "kvm_pvm") {
			t.Errorf("on a kvm_pvm host: %s (%s), want tcg", a, why)
		}
	}
}

// A network boot has no kernel of its own: the NIC's iPXE ROM boots what DHCP names.
func TestArgsNetBoot(t *testing.T) {
	a := strings.Join(Args(Config{Kernel: "vmlinux", Initrd: "initrd", Append: "quiet", Memory: 256, CPUs: 1,
		NetBoot: "http://10.0.2.100/boot.ipxe", ROMDir: "/usr/lib/ipxe/qemu",
		Relay: []string{"/usr/bin/nowhere", "vm", "relay", "127.0.0.1:8080"}}, "tcg"), " ")
	for _, want := range []string{
		"-boot order=n", "restrict=on,guestfwd=tcp:10.0.2.100:80-cmd:/usr/bin/nowhere vm relay 127.0.0.1:8080,bootfile=http://10.0.2.100/boot.ipxe",
		"-machine pc,graphics=off", "-L /usr/lib/ipxe/qemu", "virtio-net-pci,netdev=n0,bootindex=1",
	} {
		if !strings.Contains(a, want) {
			t.Errorf("qemu args lack %q:\n%s", want, a)
		}
	}
	for _, not := range []string{"-kernel", "-initrd", "-append", "romfile="} {
		if strings.Contains(a, not) {
			t.Errorf("a network boot passes %s:\n%s", not, a)
		}
	}
}
