//go:build !linux

package server

import "os"

// opener opens files inside the store through os.Root (see open_linux.go for Linux).
type opener struct{ root *os.Root }

func newOpener(root *os.Root) *opener { return &opener{root: root} }

func (o *opener) open(name string, flag int) (*os.File, error) { return o.root.OpenFile(name, flag, 0) }
