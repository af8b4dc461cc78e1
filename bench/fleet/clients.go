package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/nowhere-boot/nowhere/internal/fleet"
	"github.com/nowhere-boot/nowhere/internal/image"
	"github.com/nowhere-boot/nowhere/internal/trust"
)

// ClientsResult is what `clients` prints (JSON) for `run`.
type ClientsResult struct {
	N          int       `json:"n"`
	Times      []float64 `json:"times_s"`
	Failed     int       `json:"failed"`
	FirstErr   string    `json:"first_error,omitempty"`
	FromPeers  int64     `json:"from_peers"`
	FromOrigin int64     `json:"from_origin"`
}

// clientsCmd runs N clients at once in this process (inside the LAN host).
func clientsCmd(args []string) error {
	fs := flag.NewFlagSet("clients", flag.ContinueOnError)
	n := fs.Int("n", 1, "clients")
	source := fs.String("source", "", "STORE/images/NAME")
	keyFile := fs.String("key", "", "publisher key")
	tracePath := fs.String("trace", "", "trace file")
	work := fs.String("work", "", "directory for the caches")
	proxy := fs.String("proxy", "", "HTTP proxy")
	share := fs.String("share", "", "share the caches as LAN peers at this IP (port 0)")
	group := fs.String("group", "", "multicast group of announcements")
	size := fs.Int64("size", 0, "image size (to check the trace)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var keys []trust.PublicKey
	if *keyFile != "" {
		var err error
		if keys, err = trust.LoadKeys([]string{*keyFile}); err != nil {
			return err
		}
	}
	tf, err := os.Open(*tracePath)
	if err != nil {
		return err
	}
	tr, err := fleet.ReadTrace(tf, *size)
	tf.Close()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	if *proxy != "" {
		if err := waitProxy(ctx, *proxy, *source); err != nil {
			return err
		}
	}
	f := fleet.Fleet{N: *n, WorkDir: *work, Peers: *share != "", Template: fleet.Client{
		Source: *source, Keys: keys, Proxy: *proxy, Share: *share, Group: *group, Trace: tr,
	}}
	if *share != "" {
		f.Template.Share = *share + ":0"
	}
	res, err := f.Run(ctx)
	if err != nil {
		return err
	}
	out := ClientsResult{N: *n, Failed: res.Failed, FirstErr: res.FirstErr, FromPeers: res.FromPeers, FromOrigin: res.FromOrigin}
	for _, t := range res.Times {
		out.Times = append(out.Times, t.Seconds())
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}

// waitProxy waits until the proxy answers a request for the store's mirror list.
func waitProxy(ctx context.Context, proxy, source string) error {
	pu, err := url.Parse(proxy)
	if err != nil {
		return err
	}
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu)}, Timeout: 2 * time.Second}
	loc, err := image.ParseLocation(source)
	if err != nil {
		return err
	}
	u := loc.Store + "/mirrors"
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := c.Get(u)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("proxy %s does not answer: %v", proxy, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
