package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// nonzero writes the non-zero 4 KiB blocks of an image, in order, to a new file: the same
// data without its zero regions, the reference for "zeros cost nearly nothing".
func nonzero(args []string) error {
	if len(args) != 2 {
		return errors.New("nonzero IMAGE OUT")
	}
	in, err := os.Open(args[0])
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := args[1] + ".tmp"
	out, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	w := bufio.NewWriterSize(out, 1<<20)
	r := bufio.NewReaderSize(in, 1<<20)
	block := make([]byte, 4096)
	zero := make([]byte, 4096)
	var kept int64
	for {
		n, err := io.ReadFull(r, block)
		if n > 0 && !bytes.Equal(block[:n], zero[:n]) {
			if _, werr := w.Write(block[:n]); werr != nil {
				return werr
			}
			kept += int64(n)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w", args[0], err)
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, args[1]); err != nil {
		return err
	}
	fmt.Printf("%d\n", kept)
	return nil
}
