package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/index"
)

// updateCost prints what a client holding OLD must fetch to get NEW: the distinct chunks
// of NEW that OLD does not reference (one request each) and their compressed size, next
// to NEW's totals (a full download).
//
// Output, one line: new_chunks new_stored_bytes total_chunks total_stored_bytes chunking
func updateCost(args []string) error {
	if len(args) != 2 {
		return errors.New("updatecost OLD.index NEW.index")
	}
	old, err := load(args[0])
	if err != nil {
		return err
	}
	cur, err := load(args[1])
	if err != nil {
		return err
	}
	have := make(map[chunk.ID]bool, len(old.Entries))
	for _, e := range old.Entries {
		if !e.Zero {
			have[e.ID] = true
		}
	}
	seen := make(map[chunk.ID]bool, len(cur.Entries))
	var newN, allN int
	var newB, allB int64
	for _, e := range cur.Entries {
		if e.Zero || seen[e.ID] {
			continue
		}
		seen[e.ID] = true
		allN++
		allB += int64(e.Stored)
		if !have[e.ID] {
			newN++
			newB += int64(e.Stored)
		}
	}
	fmt.Printf("%d %d %d %d %s\n", newN, newB, allN, allB, cur.Chunking)
	return nil
}

func load(path string) (*index.Index, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	ix, err := index.Decode(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ix, nil
}

// entries prints an index's table, one entry a line (offset, length, zero or chunk ID), to
// compare the cuts of two packs with diff.
func entries(args []string) error {
	if len(args) != 1 {
		return errors.New("entries INDEX")
	}
	ix, err := load(args[0])
	if err != nil {
		return err
	}
	fmt.Printf("size %d chunking %s\n", ix.Size, ix.Chunking)
	for _, e := range ix.Entries {
		id := e.ID.String()
		if e.Zero {
			id = "zero"
		}
		fmt.Printf("%d %d %d %s\n", e.Off, e.Len, e.Stored, id)
	}
	return nil
}
