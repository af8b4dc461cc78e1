package units

import (
	"testing"
	"time"
)

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0 B", 1: "1 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 64 << 10: "64.0 KiB",
		100 << 10: "100 KiB", 1023 << 10: "1023 KiB", 1 << 20: "1.0 MiB", 3 << 29: "1.5 GiB", 5 << 40: "5.0 TiB",
		1 << 50: "1.0 PiB", 2000 << 50: "2000 PiB", -2048: "-2.0 KiB", -5: "-5 B",
	} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestRate(t *testing.T) {
	if got := Rate(100<<20, 2*time.Second); got != "50.0 MiB/s" {
		t.Errorf("Rate = %q", got)
	}
	if got := Rate(100, 0); got != "-" {
		t.Errorf("Rate over no time = %q", got)
	}
}

func TestParseBytes(t *testing.T) {
	for s, want := range map[string]int64{
		"0": 0, "4096": 4096, "64K": 64 << 10, "64k": 64 << 10, "128M": 128 << 20, "1G": 1 << 30, "2T": 2 << 40,
		"64KiB": 64 << 10, "1GB": 1 << 30, " 8M ": 8 << 20, "100B": 100,
	} {
		got, err := ParseBytes(s)
		if err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "K", "-1", "1.5M", "12X", "1P", "99999999999T", "0x10", "M64"} {
		if n, err := ParseBytes(s); err == nil {
			t.Errorf("ParseBytes(%q) = %d, want an error", s, n)
		}
	}
}

func TestParseDuration(t *testing.T) {
	for s, want := range map[string]time.Duration{
		"90s": 90 * time.Second, "10m": 10 * time.Minute, "12h": 12 * time.Hour, "30d": 30 * 24 * time.Hour,
		"1.5d": 36 * time.Hour, "0": 0, "0d": 0, "1h30m": 90 * time.Minute,
	} {
		got, err := ParseDuration(s)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %s, %v; want %s", s, got, err, want)
		}
	}
	// 106752d and more do not fit a time.Duration: refused, never wrapped around.
	for _, s := range []string{"", "d", "-1d", "-5s", "soon", "10", "1w", "106752d", "1e9d", "3000000h"} {
		if d, err := ParseDuration(s); err == nil {
			t.Errorf("ParseDuration(%q) = %s, want an error", s, d)
		}
	}
}

func TestCount(t *testing.T) {
	for _, c := range []struct {
		n    int
		noun string
		want string
	}{
		{0, "problem", "0 problems"}, {1, "problem", "1 problem"}, {2, "problem", "2 problems"},
		{1, "index", "1 index"}, {3, "index", "3 indexes"}, {2, "entry", "2 entries"},
		{2, "day", "2 days"}, {1, "chunk", "1 chunk"}, {5, "version", "5 versions"},
	} {
		if got := Count(c.n, c.noun); got != c.want {
			t.Errorf("Count(%d, %q) = %q, want %q", c.n, c.noun, got, c.want)
		}
	}
	if got := Count(int64(1), "boot"); got != "1 boot" {
		t.Errorf("Count(int64(1), boot) = %q", got)
	}
}
