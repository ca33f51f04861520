package file

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/template"

	"github.com/vrsky/vrsky/runtime/connector"
)

//go:embed sink.schema.json
var sinkSchema []byte

// Sink is the file sink connector.
var Sink = connector.Connector{
	Name:         "file",
	Version:      "1.0.0",
	Kind:         connector.KindSink,
	Description:  "Writes each message atomically to its own file in a directory, named by a template; never overwrites different content unless told to.",
	ConfigSchema: sinkSchema,
	Builtin:      true,
	NewSink: func(cfg json.RawMessage, env connector.Env) (connector.Sink, error) {
		c, tpl, err := parseSinkConfig(cfg)
		if err != nil {
			return nil, err
		}
		return newSink(c, tpl, env), nil
	},
	Check: func(_ context.Context, cfg json.RawMessage, _ connector.Env) error {
		c, _, err := parseSinkConfig(cfg)
		if err != nil {
			return err
		}
		if !*c.CreateDir {
			return checkSinkDir(c.Dir)
		}
		return nil
	},
}

// checkSinkDir refuses a dir that is missing or no directory, without the
// server's path in the reason: c.Dir is the tenant's dir under the files
// root, which the tenant did not write and must not learn.
func checkSinkDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return &connector.SpecError{Field: "dir", Reason: pathless(err).Error()}
	}
	if !fi.IsDir() {
		return &connector.SpecError{Field: "dir", Reason: "is not a directory"}
	}
	return nil
}

type sink struct {
	cfg SinkConfig
	tpl *template.Template
	log *slog.Logger
}

func newSink(c SinkConfig, tpl *template.Template, env connector.Env) *sink {
	log := env.Logger
	if log == nil {
		log = slog.Default()
	}
	return &sink{cfg: c, tpl: tpl, log: log}
}

// Close implements connector.Sink.
func (s *sink) Close() error { return nil }

// Deliver writes msg to its file: a temporary file in the same directory,
// fsynced, then linked into place (or renamed over the old file when
// overwrite is on) and the directory fsynced. Its errors name files
// relative to dir, never by the server's path: the operations below dir
// go through an os.Root, whose errors carry the relative name, and those
// on dir itself drop the path (pathless).
func (s *sink) Deliver(ctx context.Context, msg *connector.Message) error {
	name, err := s.fileName(msg)
	if err != nil {
		return err
	}
	if *s.cfg.CreateDir {
		if err := os.MkdirAll(s.cfg.Dir, 0o755); err != nil {
			return fmt.Errorf("file sink: create dir: %w", pathless(err))
		}
	}
	// Every path below goes through root, which refuses to leave dir (a
	// symbolic link pointing outside included).
	root, err := os.OpenRoot(s.cfg.Dir)
	if err != nil {
		return fmt.Errorf("file sink: open dir: %w", pathless(err))
	}
	defer root.Close()
	if sub := filepath.Dir(name); sub != "." && *s.cfg.CreateDir {
		if err := root.MkdirAll(sub, 0o755); err != nil {
			return fmt.Errorf("file sink: create directory for %s: %w", name, err)
		}
	}
	tmp, err := writeTemp(ctx, root, name, msg)
	if err != nil {
		return err
	}
	defer func() { _ = root.Remove(tmp) }() // gone already once linked or renamed
	if s.cfg.Overwrite {
		if err := root.Rename(tmp, name); err != nil {
			return fmt.Errorf("file sink: rename into %s: %w", name, err)
		}
	} else if err := root.Link(tmp, name); err != nil {
		if !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("file sink: link into %s: %w", name, err)
		}
		same, cerr := sameContent(root, tmp, name)
		if cerr != nil {
			return fmt.Errorf("file sink: compare with existing %s: %w", name, cerr)
		}
		if !same {
			return connector.Permanent(fmt.Errorf("file sink: %s already exists in dir with different content (set overwrite to replace it)", name))
		}
		return nil // a redelivery: the file is already there
	}
	if err := syncDir(root, filepath.Dir(name)); err != nil {
		return fmt.Errorf("file sink: sync directory of %s: %w", name, err)
	}
	return nil
}

// writeTemp streams msg's payload into a new temporary file beside name
// and fsyncs it; it returns the temporary file's name.
func writeTemp(ctx context.Context, root *os.Root, name string, msg *connector.Message) (string, error) {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := filepath.Join(filepath.Dir(name), "."+filepath.Base(name)+"."+hex.EncodeToString(rnd[:])+".tmp")
	body, err := msg.Body(ctx) // a claim-checked payload streams from the object store
	if err != nil {
		return "", err
	}
	defer body.Close()
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return "", fmt.Errorf("file sink: create temporary file for %s: %w", name, err)
	}
	_, err = io.Copy(f, body)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = root.Remove(tmp)
		return "", fmt.Errorf("file sink: write %s: %w", name, err)
	}
	return tmp, nil
}

// sameContent compares two files of root byte by byte.
func sameContent(root *os.Root, a, b string) (bool, error) {
	fa, err := root.Open(a)
	if err != nil {
		return false, err
	}
	defer fa.Close()
	fb, err := root.Open(b)
	if err != nil {
		return false, err
	}
	defer fb.Close()
	ia, err := fa.Stat()
	if err != nil {
		return false, err
	}
	ib, err := fb.Stat()
	if err != nil {
		return false, err
	}
	if ia.Size() != ib.Size() {
		return false, nil
	}
	ra, rb := bufio.NewReaderSize(fa, 64<<10), bufio.NewReaderSize(fb, 64<<10)
	pa, pb := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		na, ea := io.ReadFull(ra, pa)
		nb, eb := io.ReadFull(rb, pb)
		if !bytes.Equal(pa[:na], pb[:nb]) {
			return false, nil
		}
		if ea != nil || eb != nil {
			if errors.Is(ea, io.EOF) || errors.Is(ea, io.ErrUnexpectedEOF) {
				return errors.Is(eb, io.EOF) || errors.Is(eb, io.ErrUnexpectedEOF), nil
			}
			if ea != nil {
				return false, ea
			}
			return false, eb
		}
	}
}

func syncDir(root *os.Root, dir string) error {
	d, err := root.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// fileName renders the template for msg and checks that the result stays
// inside the directory. Its errors name the file relative to dir.
func (s *sink) fileName(msg *connector.Message) (string, error) {
	name, err := renderFilename(s.tpl, msg)
	if err != nil {
		return "", connector.Permanent(fmt.Errorf("file sink: filename template: %w", err))
	}
	if !filepath.IsLocal(name) || strings.ContainsRune(name, 0) {
		return "", connector.Permanent(fmt.Errorf("file sink: filename %q resolves outside dir", name))
	}
	return filepath.Clean(name), nil
}
