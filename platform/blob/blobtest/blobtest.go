// Package blobtest is the contract suite of blob.Store. Every
// implementation runs it from its own tests:
//
//	func TestContract(t *testing.T) {
//		blobtest.Run(t, func(t *testing.T) blob.Store { return openFresh(t) })
//	}
//
// open must return an empty store that no other test uses; teardown belongs
// in t.Cleanup.
package blobtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/vrsky/vrsky/platform/blob"
)

// LargeSize is the size of the streamed object: above the 8 MiB
// multipart threshold of S3 clients and many NATS chunks.
const LargeSize = 9<<20 + 12345

// Run runs every contract test against fresh stores from open.
func Run(t *testing.T, open func(t *testing.T) blob.Store) {
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
			defer cancel()
			tc.run(ctx, t, s)
		})
	}
}

type test struct {
	name string
	run  func(ctx context.Context, t *testing.T, s blob.Store)
}

var tests = []test{
	{"PutGetStat", func(ctx context.Context, t *testing.T, s blob.Store) {
		for _, tc := range []struct {
			name, key string
			data      []byte
		}{
			{"abc", "payloads/acme/orders/1", []byte("abc")},
			{"empty", "payloads/acme/orders/empty", nil},
			{"binary", "modules/jq/1.0.0/module.wasm", bytes.Repeat([]byte{0, 1, 2, 0xff}, 4000)},
			{"dots", "a/b.c/d_e-f.0", []byte(`{"x":1}`)},
		} {
			t.Run(tc.name, func(t *testing.T) {
				info, err := s.Put(ctx, tc.key, bytes.NewReader(tc.data))
				if err != nil {
					t.Fatalf("Put: %v", err)
				}
				want := infoOf(tc.key, tc.data)
				assertInfo(t, "Put", info, want)
				st, err := s.Stat(ctx, tc.key)
				if err != nil {
					t.Fatalf("Stat: %v", err)
				}
				assertInfo(t, "Stat", st, want)
				got, ginfo := getAll(ctx, t, s, tc.key)
				assertInfo(t, "Get", ginfo, want)
				if !bytes.Equal(got, tc.data) {
					t.Errorf("Get returned %d bytes, want %d (content differs)", len(got), len(tc.data))
				}
			})
		}
	}},
	{"KnownDigest", func(ctx context.Context, t *testing.T, s blob.Store) {
		info, err := s.Put(ctx, "k", bytes.NewReader([]byte("abc")))
		if err != nil {
			t.Fatalf("Put: %v", err)
		}
		const want = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
		if info.SHA256 != want {
			t.Errorf("SHA256 of \"abc\" = %s, want %s", info.SHA256, want)
		}
	}},
	{"LargeStreamed", func(ctx context.Context, t *testing.T, s blob.Store) {
		// The source is neither a bytes.Reader nor a Seeker, so the store
		// cannot learn the size up front: it has to stream.
		src := newPattern(LargeSize, 1)
		info, err := s.Put(ctx, "big/object", src)
		if err != nil {
			t.Fatalf("Put %d bytes: %v", LargeSize, err)
		}
		want := blob.Info{Key: "big/object", Size: LargeSize, SHA256: src.sum()}
		assertInfo(t, "Put", info, want)
		rc, ginfo, err := s.Get(ctx, "big/object")
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		defer rc.Close()
		assertInfo(t, "Get", ginfo, want)
		h := sha256.New()
		// Small reads, as a streaming consumer would do.
		n, err := io.CopyBuffer(h, rc, make([]byte, 4096))
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if n != LargeSize || hex.EncodeToString(h.Sum(nil)) != want.SHA256 {
			t.Errorf("read %d bytes with sha256 %x, want %d and %s", n, h.Sum(nil), LargeSize, want.SHA256)
		}
	}},
	{"Overwrite", func(ctx context.Context, t *testing.T, s blob.Store) {
		first := bytes.Repeat([]byte("first "), 50000)
		second := []byte("second, shorter")
		if _, err := s.Put(ctx, "k", bytes.NewReader(first)); err != nil {
			t.Fatalf("Put first: %v", err)
		}
		info, err := s.Put(ctx, "k", bytes.NewReader(second))
		if err != nil {
			t.Fatalf("Put second: %v", err)
		}
		assertInfo(t, "Put", info, infoOf("k", second))
		st, err := s.Stat(ctx, "k")
		if err != nil {
			t.Fatalf("Stat: %v", err)
		}
		assertInfo(t, "Stat", st, infoOf("k", second))
		if got, _ := getAll(ctx, t, s, "k"); !bytes.Equal(got, second) {
			t.Errorf("Get after overwrite = %q, want %q", trunc(got), second)
		}
	}},
	{"Missing", func(ctx context.Context, t *testing.T, s blob.Store) {
		if _, err := s.Put(ctx, "present", bytes.NewReader([]byte("x"))); err != nil {
			t.Fatalf("Put: %v", err)
		}
		for _, key := range []string{"absent", "present/child", "presen"} {
			_, _, err := s.Get(ctx, key)
			if !errors.Is(err, blob.ErrNotFound) {
				t.Errorf("Get(%q): %v, want ErrNotFound", key, err)
			}
			if _, err := s.Stat(ctx, key); !errors.Is(err, blob.ErrNotFound) {
				t.Errorf("Stat(%q): %v, want ErrNotFound", key, err)
			}
			if err := s.Delete(ctx, key); err != nil {
				t.Errorf("Delete(%q) of a missing object: %v, want nil", key, err)
			}
		}
	}},
	{"Delete", func(ctx context.Context, t *testing.T, s blob.Store) {
		for _, k := range []string{"a/1", "a/2"} {
			if _, err := s.Put(ctx, k, bytes.NewReader([]byte(k))); err != nil {
				t.Fatalf("Put: %v", err)
			}
		}
		if err := s.Delete(ctx, "a/1"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if _, err := s.Stat(ctx, "a/1"); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("Stat after Delete: %v, want ErrNotFound", err)
		}
		if _, _, err := s.Get(ctx, "a/1"); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("Get after Delete: %v, want ErrNotFound", err)
		}
		if err := s.Delete(ctx, "a/1"); err != nil {
			t.Errorf("Delete twice: %v", err)
		}
		if got, _ := getAll(ctx, t, s, "a/2"); string(got) != "a/2" {
			t.Errorf("neighbour changed: %q", got)
		}
		// The key can be used again.
		if _, err := s.Put(ctx, "a/1", bytes.NewReader([]byte("again"))); err != nil {
			t.Fatalf("Put after Delete: %v", err)
		}
		if got, _ := getAll(ctx, t, s, "a/1"); string(got) != "again" {
			t.Errorf("Get after re-Put = %q", got)
		}
	}},
	{"InvalidKeys", func(ctx context.Context, t *testing.T, s blob.Store) {
		for _, key := range []string{"", "/a", "a/", "a//b", "a/../b", "./a", "a b", "a\x00", "ü", "a?b", "a*"} {
			if _, err := s.Put(ctx, key, bytes.NewReader([]byte("x"))); !errors.Is(err, blob.ErrInvalidKey) {
				t.Errorf("Put(%q): %v, want ErrInvalidKey", key, err)
			}
			if _, err := s.Stat(ctx, key); !errors.Is(err, blob.ErrInvalidKey) {
				t.Errorf("Stat(%q): %v, want ErrInvalidKey", key, err)
			}
		}
	}},
	{"FailedPutKeepsPrevious", func(ctx context.Context, t *testing.T, s blob.Store) {
		old := []byte("old content")
		if _, err := s.Put(ctx, "k", bytes.NewReader(old)); err != nil {
			t.Fatalf("Put: %v", err)
		}
		boom := errors.New("source broke")
		r := io.MultiReader(newPattern(1<<20, 2), &failingReader{err: boom})
		if _, err := s.Put(ctx, "k", r); err == nil {
			t.Fatalf("Put from a failing reader succeeded")
		}
		if _, err := s.Put(ctx, "new", io.MultiReader(newPattern(1<<20, 3), &failingReader{err: boom})); err == nil {
			t.Fatalf("Put from a failing reader succeeded")
		}
		if got, _ := getAll(ctx, t, s, "k"); !bytes.Equal(got, old) {
			t.Errorf("after a failed Put, Get = %q, want %q", trunc(got), old)
		}
		if _, err := s.Stat(ctx, "new"); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("a failed Put left an object behind: Stat = %v", err)
		}
	}},
	{"CancelledPut", func(ctx context.Context, t *testing.T, s blob.Store) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := s.Put(cctx, "k", newPattern(1<<20, 4)); err == nil {
			t.Errorf("Put with a cancelled context succeeded")
		}
	}},
	{"Sweep", func(ctx context.Context, t *testing.T, s blob.Store) {
		sw, ok := s.(blob.Sweeper)
		if !ok {
			t.Fatalf("%T is not a blob.Sweeper (the payload janitor needs it)", s)
		}
		keys := []string{"payloads/acme/orders/1", "payloads/acme/orders/2", "modules/acme/jq/1"}
		for _, k := range keys {
			if _, err := s.Put(ctx, k, bytes.NewReader([]byte(k))); err != nil {
				t.Fatalf("Put: %v", err)
			}
		}
		if n, err := sw.Sweep(ctx, "payloads/", time.Now().Add(-time.Hour)); err != nil || n != 0 {
			t.Fatalf("Sweep of what is older than an hour = %d, %v; want 0 deleted", n, err)
		}
		if n, err := sw.Sweep(ctx, "payloads/", time.Now().Add(time.Minute)); err != nil || n != 2 {
			t.Fatalf("Sweep of every payload = %d, %v; want 2 deleted", n, err)
		}
		for i, k := range keys {
			if _, err := s.Stat(ctx, k); (err == nil) != (i == 2) {
				t.Errorf("after Sweep, Stat %s: %v; want only the module kept", k, err)
			}
		}
	}},
	{"EarlyClose", func(ctx context.Context, t *testing.T, s blob.Store) {
		if _, err := s.Put(ctx, "k", newPattern(2<<20, 5)); err != nil {
			t.Fatalf("Put: %v", err)
		}
		for range 3 {
			rc, _, err := s.Get(ctx, "k")
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if _, err := io.ReadFull(rc, make([]byte, 1000)); err != nil {
				t.Fatalf("read: %v", err)
			}
			if err := rc.Close(); err != nil {
				t.Errorf("Close after a partial read: %v", err)
			}
		}
		got, _ := getAll(ctx, t, s, "k")
		if int64(len(got)) != 2<<20 {
			t.Errorf("Get after early closes read %d bytes", len(got))
		}
	}},
	{"ConcurrentPutsDistinctKeys", func(ctx context.Context, t *testing.T, s blob.Store) {
		const n = 8
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = s.Put(ctx, fmt.Sprintf("c/%d", i), newPattern(300<<10+i, uint64(100+i)))
			}()
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("Put %d: %v", i, errs[i])
			}
			want := newPattern(300<<10+i, uint64(100+i))
			wb, _ := io.ReadAll(want)
			got, info := getAll(ctx, t, s, fmt.Sprintf("c/%d", i))
			if !bytes.Equal(got, wb) {
				t.Errorf("object %d differs", i)
			}
			assertInfo(t, "Get", info, infoOf(fmt.Sprintf("c/%d", i), wb))
		}
	}},
	{"ConcurrentPutsSameKey", func(ctx context.Context, t *testing.T, s blob.Store) {
		const n = 6
		contents := make([][]byte, n)
		for i := range n {
			contents[i], _ = io.ReadAll(newPattern(200<<10+i*1000, uint64(200+i)))
		}
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = s.Put(ctx, "same", bytes.NewReader(contents[i]))
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("Put %d: %v", i, err)
			}
		}
		// One of the writers wins, whole: content, size and digest agree.
		got, info := getAll(ctx, t, s, "same")
		winner := -1
		for i, c := range contents {
			if bytes.Equal(got, c) {
				winner = i
			}
		}
		if winner < 0 {
			t.Fatalf("Get returned %d bytes that match no writer", len(got))
		}
		assertInfo(t, "Get", info, infoOf("same", contents[winner]))
		st, err := s.Stat(ctx, "same")
		if err != nil {
			t.Fatalf("Stat: %v", err)
		}
		assertInfo(t, "Stat", st, infoOf("same", contents[winner]))
	}},
	{"ConcurrentReaders", func(ctx context.Context, t *testing.T, s blob.Store) {
		data, _ := io.ReadAll(newPattern(1<<20, 7))
		if _, err := s.Put(ctx, "shared", bytes.NewReader(data)); err != nil {
			t.Fatalf("Put: %v", err)
		}
		var wg sync.WaitGroup
		for range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rc, _, err := s.Get(ctx, "shared")
				if err != nil {
					t.Errorf("Get: %v", err)
					return
				}
				defer rc.Close()
				got, err := io.ReadAll(rc)
				if err != nil || !bytes.Equal(got, data) {
					t.Errorf("concurrent read: %d bytes, %v", len(got), err)
				}
			}()
		}
		wg.Wait()
	}},
}

func getAll(ctx context.Context, t *testing.T, s blob.Store, key string) ([]byte, blob.Info) {
	t.Helper()
	rc, info, err := s.Get(ctx, key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %q: %v", key, err)
	}
	return b, info
}

func infoOf(key string, data []byte) blob.Info {
	sum := sha256.Sum256(data)
	return blob.Info{Key: key, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
}

func assertInfo(t *testing.T, what string, got, want blob.Info) {
	t.Helper()
	if got != want {
		t.Errorf("%s: Info = %+v, want %+v", what, got, want)
	}
}

func trunc(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

// pattern is a deterministic pseudo-random reader of a fixed size that
// hashes what it hands out. It is deliberately not a Seeker.
type pattern struct {
	left int64
	rng  *rand.ChaCha8
	h    interface {
		io.Writer
		Sum([]byte) []byte
	}
}

func newPattern(size int, seed uint64) *pattern {
	var s [32]byte
	s[0] = byte(seed)
	s[1] = byte(seed >> 8)
	return &pattern{left: int64(size), rng: rand.NewChaCha8(s), h: sha256.New()}
}

func (p *pattern) Read(b []byte) (int, error) {
	if p.left == 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.left {
		b = b[:p.left]
	}
	n, _ := p.rng.Read(b)
	p.h.Write(b[:n])
	p.left -= int64(n)
	return n, nil
}

// sum is the digest of everything read so far (all of it, after EOF).
func (p *pattern) sum() string { return hex.EncodeToString(p.h.Sum(nil)) }

type failingReader struct{ err error }

func (f *failingReader) Read([]byte) (int, error) { return 0, f.err }
