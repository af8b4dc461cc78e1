package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestAppendCSV: the shared results format, one header however many runs append.
func TestAppendCSV(t *testing.T) {
	path := filepath.Join(t.TempDir(), "results", "wanboot.csv")
	rows := []csvRow{{"100mbit-40ms", csvMethod("fetch"), "login", 37.6, "s"}, {"100mbit-40ms", "limit", "bytes", 15001206, "B"}}
	if err := appendCSV(path, "boot", rows); err != nil {
		t.Fatal(err)
	}
	if err := appendCSV(path, "boot-replay", rows[:1]); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	date := time.Now().UTC().Format("2006-01-02")
	want := "date,suite,scenario,method,n,metric,value,unit\n" +
		date + ",boot,100mbit-40ms,download,1,login,37.60,s\n" +
		date + ",boot,100mbit-40ms,limit,1,bytes,15001206,B\n" +
		date + ",boot-replay,100mbit-40ms,download,1,login,37.60,s\n"
	if string(b) != want {
		t.Fatalf("got\n%s\nwant\n%s", b, want)
	}
}
