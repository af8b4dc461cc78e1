package store_test

import (
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/nowhere-boot/nowhere/internal/store"
)

// TestTransportHonoursProxyEnvironment checks that the transport every mirror uses takes
// its proxy from HTTP_PROXY, HTTPS_PROXY and NO_PROXY. Go reads those once per process,
// so each case runs this test binary again with its own environment.
func TestTransportHonoursProxyEnvironment(t *testing.T) {
	if url := os.Getenv("NOWHERE_PROXY_CHILD"); url != "" {
		req, _ := http.NewRequest("GET", url, nil)
		p, err := store.NewTransport().Proxy(req)
		if err != nil {
			t.Fatal(err)
		}
		got := "direct"
		if p != nil {
			got = p.String()
		}
		os.Stdout.WriteString("proxy=" + got + "\n")
		return
	}
	for _, tc := range []struct {
		url  string
		env  []string
		want string
	}{
		{"http://mirror.example/chunks/x", []string{"HTTP_PROXY=http://proxy.example:3128"}, "http://proxy.example:3128"},
		{"https://mirror.example/chunks/x", []string{"HTTPS_PROXY=http://tls-proxy.example:3128"}, "http://tls-proxy.example:3128"},
		{"http://mirror.example/chunks/x", []string{"HTTP_PROXY=http://proxy.example:3128", "NO_PROXY=mirror.example"}, "direct"},
		{"http://other.example/chunks/x", []string{"HTTP_PROXY=http://proxy.example:3128", "NO_PROXY=.mirror.example"}, "http://proxy.example:3128"},
		{"http://mirror.example/chunks/x", nil, "direct"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestTransportHonoursProxyEnvironment$")
		cmd.Env = []string{"NOWHERE_PROXY_CHILD=" + tc.url, "PATH=" + os.Getenv("PATH")}
		cmd.Env = append(cmd.Env, tc.env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", tc.env, err, out)
		}
		if !strings.Contains(string(out), "proxy="+tc.want+"\n") {
			t.Errorf("%s with %v: want proxy=%s, got:\n%s", tc.url, tc.env, tc.want, out)
		}
	}
}
