package trust

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestStateConcurrentAcceptKeepsTheHighest(t *testing.T) {
	path := filepath.Join(t.TempDir(), StateFileName)
	var wg sync.WaitGroup
	for i := 1; i <= 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Separate State values, as separate processes would have.
			if err := OpenState(path).Accept(fmt.Sprintf("img%d", i%3), "", uint64(i)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "nowhere-trust-state 1\nimg0 18\nimg1 19\nimg2 20\n"
	if string(b) != want {
		t.Fatalf("state file:\n%s\nwant:\n%s", b, want)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Fatalf("temporary file left behind: %s", e.Name())
		}
	}
}

func TestStateNeverGoesDown(t *testing.T) {
	s := OpenState(filepath.Join(t.TempDir(), StateFileName))
	for _, v := range []uint64{5, 3, 5, 7, 1} {
		if err := s.Accept("debian", "C384795F8E7BBD30", v); err != nil {
			t.Fatal(err)
		}
	}
	if h, err := s.Highest("debian", "C384795F8E7BBD30"); err != nil || h != 7 {
		t.Fatalf("highest %d, %v", h, err)
	}
}

func TestCorruptStateIsOneClearError(t *testing.T) {
	path := filepath.Join(t.TempDir(), StateFileName)
	if err := os.WriteFile(path, []byte("nowhere-trust-state 1\ndebian seven\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := OpenState(path).Highest("debian", "")
	if err == nil || !strings.Contains(err.Error(), path+`: line 2: bad version "seven"`) {
		t.Fatalf("got %v", err)
	}
}
