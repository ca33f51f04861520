package blob

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// DirStore keeps objects as files in one directory of the local disk: the
// single-node default for claim-check payloads, which then cross the
// server without passing through NATS (see RATIONALE.md). It is not
// shared between machines; a cluster uses NATS or S3.
//
// An object is one file, named after the SHA-256 of its key (so any valid
// key fits a file name) under a two-hex-digit fan-out directory, and
// starts with a short text header: a magic line, the content's SHA-256
// and the key. Put writes a temporary file and renames it into place, so
// readers see the old object or the new one, whole.
type DirStore struct {
	dir   string
	fsync bool
}

const dirMagic = "vrsky-object 1\n"

// NewDir opens (creating) a DirStore in dir. With fsync, Put syncs each
// object and its directory before it returns, so an acknowledged payload
// survives a power loss; without, the OS writes it back in its own time.
// Temporary files left by a process that died during a Put are removed.
func NewDir(dir string, fsync bool) (*DirStore, error) {
	tmp := filepath.Join(dir, "tmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return nil, fmt.Errorf("blob: object dir: %w", err)
	}
	stale, err := os.ReadDir(tmp)
	if err != nil {
		return nil, fmt.Errorf("blob: object dir: %w", err)
	}
	for _, e := range stale {
		_ = os.Remove(filepath.Join(tmp, e.Name()))
	}
	return &DirStore{dir: dir, fsync: fsync}, nil
}

// path is the file of key.
func (s *DirStore) path(key string) string {
	sum := sha256.Sum256([]byte(key))
	name := hex.EncodeToString(sum[:])
	return filepath.Join(s.dir, name[:2], name)
}

// Put implements Store.
func (s *DirStore) Put(ctx context.Context, key string, r io.Reader) (Info, error) {
	if err := ValidateKey(key); err != nil {
		return Info{}, fmt.Errorf("blob: put: %w", err)
	}
	final := s.path(key)
	if err := os.MkdirAll(filepath.Dir(final), 0o700); err != nil {
		return Info{}, fmt.Errorf("blob: put %s: %w: %w", key, ErrUnavailable, err)
	}
	f, err := os.CreateTemp(filepath.Join(s.dir, "tmp"), "put-*")
	if err != nil {
		return Info{}, fmt.Errorf("blob: put %s: %w: %w", key, ErrUnavailable, err)
	}
	info, err := s.write(ctx, f, key, r)
	if err == nil && s.fsync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), final)
	}
	if err == nil && s.fsync {
		err = syncDir(filepath.Dir(final))
	}
	if err != nil {
		_ = os.Remove(f.Name())
		if errors.Is(err, ErrReadFailed) || ctx.Err() != nil {
			return Info{}, fmt.Errorf("blob: put %s: %w", key, err)
		}
		return Info{}, fmt.Errorf("blob: put %s: %w: %w", key, ErrUnavailable, err)
	}
	return info, nil
}

// ErrReadFailed wraps the error of the reader given to Put, so that a
// failing source is not taken for a failing store.
var ErrReadFailed = errors.New("reading the object's content failed")

// write writes the header with a blank digest, the content, then the
// digest over the blank.
func (s *DirStore) write(ctx context.Context, f *os.File, key string, r io.Reader) (Info, error) {
	blank := strings.Repeat("0", sha256.Size*2)
	if _, err := io.WriteString(f, dirMagic+blank+"\n"+key+"\n"); err != nil {
		return Info{}, err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), ctxReader{ctx, r})
	if err != nil {
		return Info{}, err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if _, err := f.WriteAt([]byte(sum), int64(len(dirMagic))); err != nil {
		return Info{}, err
	}
	return Info{Key: key, Size: n, SHA256: sum}, nil
}

// ctxReader stops a copy when its context ends, and marks the reader's
// own errors.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%w: %w", ErrReadFailed, err)
	}
	return n, err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// open opens key's file and reads its header; the file is positioned at
// the content.
func (s *DirStore) open(op, key string) (*os.File, *bufio.Reader, Info, error) {
	if err := ValidateKey(key); err != nil {
		return nil, nil, Info{}, fmt.Errorf("blob: %s: %w", op, err)
	}
	f, err := os.Open(s.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, Info{}, fmt.Errorf("blob: %s %s: %w", op, key, ErrNotFound)
	}
	if err != nil {
		return nil, nil, Info{}, fmt.Errorf("blob: %s %s: %w: %w", op, key, ErrUnavailable, err)
	}
	fail := func(err error) (*os.File, *bufio.Reader, Info, error) {
		f.Close()
		return nil, nil, Info{}, fmt.Errorf("blob: %s %s: %w", op, key, err)
	}
	st, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	br := bufio.NewReaderSize(f, 32<<10)
	h, err := readHeader(br)
	if err != nil {
		return fail(err)
	}
	if h.key != key {
		return fail(fmt.Errorf("%w: bad header", ErrCorrupt))
	}
	return f, br, Info{Key: key, Size: st.Size() - int64(h.len), SHA256: h.sha256}, nil
}

// header is an object file's header.
type header struct {
	sha256, key string
	len         int // bytes, up to the content
}

// readHeader reads the header that write wrote, leaving br at the content.
func readHeader(br *bufio.Reader) (header, error) {
	var lines [3]string
	n := 0
	for i := range lines {
		line, err := br.ReadString('\n')
		if err != nil {
			return header{}, fmt.Errorf("%w: header cut short", ErrCorrupt)
		}
		lines[i], n = strings.TrimSuffix(line, "\n"), n+len(line)
	}
	if lines[0]+"\n" != dirMagic || len(lines[1]) != sha256.Size*2 {
		return header{}, fmt.Errorf("%w: bad header", ErrCorrupt)
	}
	return header{sha256: lines[1], key: lines[2], len: n}, nil
}

// Get implements Store.
func (s *DirStore) Get(ctx context.Context, key string) (io.ReadCloser, Info, error) {
	f, br, info, err := s.open("get", key)
	if err != nil {
		return nil, Info{}, err
	}
	return &dirReader{f: f, r: br, want: info, h: sha256.New()}, info, nil
}

// dirReader checks size and digest at the end of the content.
type dirReader struct {
	f    *os.File
	r    io.Reader
	want Info
	h    hash.Hash
	n    int64
}

func (d *dirReader) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	d.h.Write(p[:n])
	d.n += int64(n)
	if err == io.EOF {
		if got := hex.EncodeToString(d.h.Sum(nil)); d.n != d.want.Size || got != d.want.SHA256 {
			return n, fmt.Errorf("blob: read %s: %w: %d bytes with sha256 %s, want %d bytes with %s",
				d.want.Key, ErrCorrupt, d.n, got, d.want.Size, d.want.SHA256)
		}
	} else if err != nil {
		err = fmt.Errorf("blob: read %s: %w", d.want.Key, err)
	}
	return n, err
}

func (d *dirReader) Close() error { return d.f.Close() }

// Stat implements Store.
func (s *DirStore) Stat(_ context.Context, key string) (Info, error) {
	f, _, info, err := s.open("stat", key)
	if err != nil {
		return Info{}, err
	}
	f.Close()
	return info, nil
}

// Delete implements Store.
func (s *DirStore) Delete(_ context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return fmt.Errorf("blob: delete: %w", err)
	}
	if err := os.Remove(s.path(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blob: delete %s: %w: %w", key, ErrUnavailable, err)
	}
	return nil
}

// Sweep implements Sweeper. Files are named by their key's hash, so the
// key comes from the header of each file old enough to go.
func (s *DirStore) Sweep(ctx context.Context, prefix string, cutoff time.Time) (int, error) {
	n := 0
	err := filepath.WalkDir(s.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // deleted meanwhile
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() {
			if p != s.dir && filepath.Base(p) == "tmp" {
				return filepath.SkipDir // Puts in progress
			}
			return nil
		}
		info, err := d.Info()
		if err != nil || !info.ModTime().Before(cutoff) || !strings.HasPrefix(fileKey(p), prefix) {
			return nil
		}
		if err := os.Remove(p); err == nil {
			n++
		}
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("blob: sweep %s: %w", s.dir, err)
	}
	return n, nil
}

// fileKey is the key in an object file's header, "" if it has none.
func fileKey(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	h, _ := readHeader(bufio.NewReaderSize(f, 512))
	return h.key
}
