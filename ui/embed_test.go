package ui

import (
	"io/fs"
	"testing"
)

// TestBundleIsFresh: the embedded bundle was built from the sources in
// this folder. It fails on a placeholder (no bundle built) and on a bundle
// older than a source change; `make ui` (which make build and make test
// run first) rebuilds it.
func TestBundleIsFresh(t *testing.T) {
	want, err := SourcesHash(".")
	if err != nil {
		t.Fatal(err)
	}
	got := BuiltHash()
	switch {
	case got == "":
		t.Fatalf("the UI bundle is not built (ui/dist holds the placeholder only): run `make ui`")
	case got != want:
		t.Fatalf("the embedded UI bundle is stale: built from sources %s, the sources are now %s; run `make ui`", got, want)
	}
	for _, name := range []string{"index.html", "build-hash.txt"} {
		if _, err := fs.Stat(Bundle(), name); err != nil {
			t.Errorf("bundle: %v", err)
		}
	}
	assets, err := fs.ReadDir(Bundle(), "assets")
	if err != nil || len(assets) == 0 {
		t.Errorf("bundle has no assets/ (%v)", err)
	}
}
