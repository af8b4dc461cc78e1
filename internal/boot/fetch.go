package boot

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/nowhere-boot/nowhere/internal/boot/rootd"
	"github.com/nowhere-boot/nowhere/internal/units"
)

// fetchDst is where nowhere.fetch= puts the image: /run is a tmpfs that moves into the new
// root with the system.
const fetchDst = "/run/nowhere/image"

// fetchImage downloads the whole image file at url with one plain HTTP GET into memory,
// like dracut's root=live:http (curl) and live-boot's fetch= (wget): the download-first
// baseline the boot benchmark compares nowhere against. Nothing is verified (the caller
// requires nowhere.insecure). The file appears under its final name only when complete.
func fetchImage(url string, dns []string, proxy string) (string, error) {
	client, err := rootd.NewHTTPClient(dns, proxy)
	if err != nil {
		return "", err
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if err := os.MkdirAll("/run/nowhere", 0o755); err != nil {
		return "", err
	}
	part := fetchDst + ".part"
	out, err := os.OpenFile(part, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o444)
	if err != nil {
		return "", err
	}
	n, err := io.CopyBuffer(out, resp.Body, make([]byte, 1<<20))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
		err = fmt.Errorf("got %d of %d bytes", n, resp.ContentLength)
	}
	if err == nil {
		err = os.Rename(part, fetchDst)
	}
	if err != nil {
		os.Remove(part)
		return "", fmt.Errorf("GET %s: %w", url, err)
	}
	took := time.Since(start)
	log.Printf("fetch: downloaded %s (%s) in %.1f s (%s), one plain HTTP GET, unverified", url, units.Bytes(n), took.Seconds(), units.Rate(n, took))
	return fetchDst, nil
}
