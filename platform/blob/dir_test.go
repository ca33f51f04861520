package blob_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vrsky/vrsky/platform/blob"
	"github.com/vrsky/vrsky/platform/blob/blobtest"
)

func TestDirContract(t *testing.T) {
	for _, fsync := range []bool{false, true} {
		t.Run(map[bool]string{false: "no-fsync", true: "fsync"}[fsync], func(t *testing.T) {
			blobtest.Run(t, func(t *testing.T) blob.Store {
				s, err := blob.NewDir(t.TempDir(), fsync)
				if err != nil {
					t.Fatalf("NewDir: %v", err)
				}
				return s
			})
		})
	}
}

// objectFile is the one object file in dir (the store names files after
// their key's hash, so the test finds it by walking).
func objectFile(t *testing.T, dir string) string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Base(filepath.Dir(p)) != "tmp" {
			found = append(found, p)
		}
		return err
	})
	if err != nil || len(found) != 1 {
		t.Fatalf("object files in %s: %v (%v), want one", dir, found, err)
	}
	return found[0]
}

// A file changed on disk after its Put is reported, never served as good.
func TestDirCorruption(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		corrupt func(b []byte) []byte
		atOpen  bool // the header itself is damaged: Get and Stat fail
	}{
		{"flipped content byte", func(b []byte) []byte { b[len(b)-3] ^= 1; return b }, false},
		{"truncated content", func(b []byte) []byte { return b[:len(b)-10] }, false},
		{"appended content", func(b []byte) []byte { return append(b, "more"...) }, false},
		{"bad magic", func(b []byte) []byte { b[0] = 'X'; return b }, true},
		{"header cut", func(b []byte) []byte { return b[:20] }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := blob.NewDir(dir, false)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Put(ctx, "payloads/acme/orders/1", bytes.NewReader(bytes.Repeat([]byte("abcdef"), 1000))); err != nil {
				t.Fatal(err)
			}
			file := objectFile(t, dir)
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(file, tc.corrupt(b), 0o600); err != nil {
				t.Fatal(err)
			}
			r, _, err := s.Get(ctx, "payloads/acme/orders/1")
			if tc.atOpen {
				if !errors.Is(err, blob.ErrCorrupt) {
					t.Fatalf("Get: %v, want ErrCorrupt", err)
				}
				if _, err := s.Stat(ctx, "payloads/acme/orders/1"); !errors.Is(err, blob.ErrCorrupt) {
					t.Fatalf("Stat: %v, want ErrCorrupt", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			defer r.Close()
			if _, err := io.ReadAll(r); !errors.Is(err, blob.ErrCorrupt) {
				t.Fatalf("reading a corrupted object: %v, want ErrCorrupt", err)
			}
		})
	}
}

// A Put cut short by a crash leaves only a temporary file, which the next
// open removes; a disk the store cannot write to is ErrUnavailable (the
// webhook's 503), unlike a failing source.
func TestDirLeftoversAndUnavailable(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := blob.NewDir(dir, false); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, "tmp", "put-123")
	if err := os.WriteFile(stale, []byte("half an object"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := blob.NewDir(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale temporary file after reopening: %v, want it removed", err)
	}

	if _, err := s.Put(ctx, "a/b/c", io.MultiReader(bytes.NewReader([]byte("x")), iotestErr{})); err == nil || errors.Is(err, blob.ErrUnavailable) {
		t.Errorf("Put from a failing reader: %v, want an error that is not ErrUnavailable", err)
	}
	// A file where the temporary dir should be stops writes even for root.
	if err := os.RemoveAll(filepath.Join(dir, "tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tmp"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "a/b/c", bytes.NewReader([]byte("x"))); !errors.Is(err, blob.ErrUnavailable) {
		t.Errorf("Put into an unwritable dir: %v, want ErrUnavailable", err)
	}
}

type iotestErr struct{}

func (iotestErr) Read([]byte) (int, error) { return 0, errors.New("source broke") }

func TestSplitContract(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blob.Store {
		return blob.Split{Prefix: "payloads/", Under: newDir(t), Rest: newDir(t)}
	})
}

// Split puts each key in its store, reads a prefixed key that only the
// other store has (written before the split), and deletes it there.
func TestSplitRoutes(t *testing.T) {
	ctx := context.Background()
	under, rest := newDir(t), newDir(t)
	s := blob.Split{Prefix: "payloads/", Under: under, Rest: rest}
	put := func(st blob.Store, key, v string) {
		t.Helper()
		if _, err := st.Put(ctx, key, bytes.NewReader([]byte(v))); err != nil {
			t.Fatal(err)
		}
	}
	put(s, "payloads/acme/x/1", "new")
	put(s, "modules/acme/jq/1", "module")
	put(rest, "payloads/acme/x/old", "old")
	for _, c := range []struct {
		store     blob.Store
		key       string
		wantFound bool
	}{
		{under, "payloads/acme/x/1", true},
		{rest, "payloads/acme/x/1", false},
		{rest, "modules/acme/jq/1", true},
		{under, "modules/acme/jq/1", false},
	} {
		if _, err := c.store.Stat(ctx, c.key); (err == nil) != c.wantFound {
			t.Errorf("Stat %s in its store: %v, want found=%v", c.key, err, c.wantFound)
		}
	}
	r, _, err := s.Get(ctx, "payloads/acme/x/old")
	if err != nil {
		t.Fatalf("Get of a payload the other store holds: %v", err)
	}
	b, err := io.ReadAll(r)
	r.Close()
	if err != nil || string(b) != "old" {
		t.Fatalf("read %q, %v; want old", b, err)
	}
	if err := s.Delete(ctx, "payloads/acme/x/old"); err != nil {
		t.Fatal(err)
	}
	if _, err := rest.Stat(ctx, "payloads/acme/x/old"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("after Delete the other store still has it: %v", err)
	}
}

func newDir(t *testing.T) *blob.DirStore {
	t.Helper()
	s, err := blob.NewDir(t.TempDir(), false)
	if err != nil {
		t.Fatalf("NewDir: %v", err)
	}
	return s
}

// Sweep deletes what was written before the cutoff, and nothing else.
func TestDirSweep(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := blob.NewDir(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"payloads/a/x/old1", "payloads/a/x/old2", "payloads/a/x/new"} {
		if _, err := s.Put(ctx, k, bytes.NewReader([]byte(k))); err != nil {
			t.Fatal(err)
		}
	}
	weekAgo := time.Now().Add(-7 * 24 * time.Hour)
	var paths []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			paths = append(paths, p)
		}
		return err
	})
	aged := 0
	for _, p := range paths {
		b, _ := os.ReadFile(p)
		if bytes.Contains(b, []byte("old")) {
			if err := os.Chtimes(p, weekAgo, weekAgo); err != nil {
				t.Fatal(err)
			}
			aged++
		}
	}
	if aged != 2 {
		t.Fatalf("aged %d files, want 2", aged)
	}
	n, err := s.Sweep(ctx, "payloads/", time.Now().Add(-24*time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("Sweep = %d, %v; want 2 deleted", n, err)
	}
	for k, want := range map[string]bool{"payloads/a/x/old1": false, "payloads/a/x/old2": false, "payloads/a/x/new": true} {
		if _, err := s.Stat(ctx, k); (err == nil) != want {
			t.Errorf("after Sweep, Stat %s: %v, want present=%v", k, err, want)
		}
	}
}
