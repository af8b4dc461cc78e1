package main

import (
	"encoding/json"
	"os"
)

// printJSON writes v to stdout as indented JSON, for --json: sizes in bytes, times in
// RFC 3339, so a script needs no parsing of the human units.
func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
