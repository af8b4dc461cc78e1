package main

import (
	"errors"
	"io/fs"
)

// unwrapPathError drops *fs.PathError's "open PATH:" prefix where the message already
// names the path.
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
