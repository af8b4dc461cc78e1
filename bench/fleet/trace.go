package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nowhere-boot/nowhere/internal/fleet"
	"github.com/nowhere-boot/nowhere/internal/image"
	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// loadIndex reads the latest index of name from a store directory.
func loadIndex(dir, name string) (*index.Index, error) {
	st, err := store.OpenDir(dir)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	ix, _, err := image.Load(context.Background(), st, image.Location{Name: name}, store.Policy{Attempts: 1})
	return ix, err
}

func traceCmd(args []string) error {
	fs := flag.NewFlagSet("trace", flag.ContinueOnError)
	logPath := fs.String("log", "", "access log of the server the boot read from (nowhere serve)")
	dir := fs.String("store", "", "the store it served")
	name := fs.String("image", "", "the image")
	out := fs.String("o", "", "trace file to write")
	until := fs.String("until", "", "ignore requests logged after this time (the log's format: 2006/01/02 15:04:05.000000)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *logPath == "" || *dir == "" || *name == "" || *out == "" {
		return fmt.Errorf("trace: --log, --store, --image and -o are required")
	}
	ix, err := loadIndex(*dir, *name)
	if err != nil {
		return err
	}
	f, err := os.Open(*logPath)
	if err != nil {
		return err
	}
	defer f.Close()
	var end time.Time
	if *until != "" {
		if end, err = time.Parse(fleet.LogTime, *until); err != nil {
			return fmt.Errorf("--until: %v", err)
		}
	}
	t, err := fleet.FromAccessLog(f, ix, end)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(*out), ".trace-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := t.Write(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	n, b := t.Reads()
	fmt.Printf("trace: %d reads (%.1f MB) in %d bursts\n", n, float64(b)/1e6, len(t.Bursts))
	return os.Rename(tmp.Name(), *out)
}
