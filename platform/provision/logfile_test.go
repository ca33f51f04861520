package provision

import (
	"os"
	"path/filepath"
	"testing"
)

// TestLog: each start keeps the previous run's log as .1, and a log past
// its bound starts over, appending from the beginning.
func TestLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), LogFile)
	f, err := openLog(path)
	if err != nil {
		t.Fatal(err)
	}
	write := func(s string) {
		t.Helper()
		if _, err := f.WriteString(s); err != nil {
			t.Fatal(err)
		}
	}
	write("first run\n")
	f.Close()
	if f, err = openLog(path); err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	write("second run, 0123456789\n")
	trimLog(f, 100) // within the bound: kept
	write("more\n")
	trimLog(f, 20)
	write("after the trim\n")
	for p, want := range map[string]string{path + ".1": "first run\n", path: "after the trim\n"} {
		b, err := os.ReadFile(p)
		if err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", p, b, err, want)
		}
	}
}
