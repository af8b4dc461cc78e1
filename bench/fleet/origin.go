package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nowhere-boot/nowhere/internal/server"
)

// Counts is what the origin served.
type Counts struct {
	Requests       int64 `json:"requests"`
	Bytes          int64 `json:"bytes"`
	ChunkRequests  int64 `json:"chunk_requests"`
	ChunkBytes     int64 `json:"chunk_bytes"`
	DistinctChunks int   `json:"distinct_chunks"`
}

// originCmd serves a store, answering each request after --delay (a distant server's
// round trip), counts what it sends, and writes the counts to --counts on SIGTERM.
func originCmd(args []string) error {
	fs := flag.NewFlagSet("origin", flag.ContinueOnError)
	dir := fs.String("store", "", "store directory")
	listen := fs.String("listen", "", "address")
	delay := fs.Duration("delay", 0, "answer each request this much later")
	countsPath := fs.String("counts", "", "write the counts here on SIGTERM")
	if err := fs.Parse(args); err != nil {
		return err
	}
	root, err := os.OpenRoot(*dir)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	var c Counts
	seen := map[string]bool{}
	files := server.Handler(root)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if *delay > 0 {
			time.Sleep(*delay)
		}
		rec := &countWriter{ResponseWriter: w}
		files.ServeHTTP(rec, r)
		mu.Lock()
		defer mu.Unlock()
		c.Requests++
		c.Bytes += rec.n
		if strings.HasPrefix(r.URL.Path, "/chunks/") {
			c.ChunkRequests++
			c.ChunkBytes += rec.n
			seen[r.URL.Path] = true
		}
	})
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() { _ = srv.Serve(ln) }()
	fmt.Printf("origin serving on http://%s\n", ln.Addr())
	<-sigs
	srv.Close()
	mu.Lock()
	c.DistinctChunks = len(seen)
	b, _ := json.Marshal(c)
	mu.Unlock()
	return os.WriteFile(*countsPath, b, 0o644)
}

type countWriter struct {
	http.ResponseWriter
	n int64
}

func (w *countWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}
