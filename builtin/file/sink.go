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
	"time"

	"github.com/google/uuid"

	"github.com/vrsky/vrsky/runtime"
)

//go:embed sink.schema.json
var sinkSchema []byte

// Sink is the file sink connector.
var Sink = runtime.Connector{
	Name:         "file",
	Version:      "1.0.0",
	Kind:         runtime.KindSink,
	Description:  "Writes each message atomically to its own file in a directory, named by a template; never overwrites different content unless told to.",
	ConfigSchema: sinkSchema,
	Builtin:      true,
	NewSink: func(cfg json.RawMessage, env runtime.Env) (runtime.Sink, error) {
		c, tpl, err := parseSinkConfig(cfg)
		if err != nil {
			return nil, err
		}
		return newSink(c, tpl, env), nil
	},
	Check: func(_ context.Context, cfg json.RawMessage, _ runtime.Env) error {
		c, _, err := parseSinkConfig(cfg)
		if err != nil {
			return err
		}
		if !*c.CreateDir {
			return checkDir(c.Dir)
		}
		return nil
	},
}

type sink struct {
	cfg SinkConfig
	tpl *template.Template
	log *slog.Logger
}

func newSink(c SinkConfig, tpl *template.Template, env runtime.Env) *sink {
	log := env.Logger
	if log == nil {
		log = slog.Default()
	}
	return &sink{cfg: c, tpl: tpl, log: log}
}

// Close implements runtime.Sink.
func (s *sink) Close() error { return nil }

// Deliver writes msg to its file: a temporary file in the same directory,
// fsynced, then linked into place (or renamed over the old file when
// overwrite is on) and the directory fsynced.
func (s *sink) Deliver(ctx context.Context, msg *runtime.Message) error {
	name, err := s.fileName(msg)
	if err != nil {
		return err
	}
	if *s.cfg.CreateDir {
		if err := os.MkdirAll(s.cfg.Dir, 0o755); err != nil {
			return fmt.Errorf("file sink: create %s: %w", s.cfg.Dir, err)
		}
	}
	// Every path below goes through root, which refuses to leave dir (a
	// symbolic link pointing outside included).
	root, err := os.OpenRoot(s.cfg.Dir)
	if err != nil {
		return fmt.Errorf("file sink: open %s: %w", s.cfg.Dir, err)
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
			return runtime.Permanent(fmt.Errorf("file sink: %s already exists with different content (set overwrite to replace it)", filepath.Join(s.cfg.Dir, name)))
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
func writeTemp(ctx context.Context, root *os.Root, name string, msg *runtime.Message) (string, error) {
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
// inside the directory.
func (s *sink) fileName(msg *runtime.Message) (string, error) {
	var b strings.Builder
	if err := s.tpl.Execute(&b, &tmplData{msg: msg}); err != nil {
		return "", runtime.Permanent(fmt.Errorf("file sink: filename template: %w", err))
	}
	name := b.String()
	if !filepath.IsLocal(name) || strings.ContainsRune(name, 0) {
		return "", runtime.Permanent(fmt.Errorf("file sink: filename %q resolves outside %s", name, s.cfg.Dir))
	}
	return filepath.Clean(name), nil
}

// tmplData is what the filename template sees.
type tmplData struct {
	msg    *runtime.Message
	fields map[string]any
}

// ID is the message id.
func (d *tmplData) ID() string { return d.msg.ID }

// Time is the message's time: from its id when that is a UUIDv7, else now.
func (d *tmplData) Time() Time {
	if u, err := uuid.Parse(d.msg.ID); err == nil && u.Version() == 7 {
		sec, nsec := u.Time().UnixTime()
		return Time{time.Unix(sec, nsec).UTC()}
	}
	return Time{time.Now().UTC()}
}

// Header returns the first value of a message header, or "".
func (d *tmplData) Header(key string) string { return d.msg.Header.Get(key) }

// Field returns a field of the JSON payload: strings as they are, other
// values as JSON. Dots in path reach into nested objects.
func (d *tmplData) Field(path string) (string, error) {
	if d.fields == nil {
		if d.msg.Claimed() {
			return "", fmt.Errorf("field %q: the payload is claim-checked (over 256 KiB); use .ID or .Header in the filename", path)
		}
		dec := json.NewDecoder(bytes.NewReader(d.msg.Data))
		dec.UseNumber()
		if err := dec.Decode(&d.fields); err != nil {
			return "", fmt.Errorf("field %q: the payload is not a JSON object: %w", path, err)
		}
	}
	var v any = d.fields
	for _, k := range strings.Split(path, ".") {
		obj, ok := v.(map[string]any)
		if !ok {
			return "", fmt.Errorf("field %q: %q is not inside an object", path, k)
		}
		if v, ok = obj[k]; !ok {
			return "", fmt.Errorf("field %q: no such field in the payload", path)
		}
	}
	switch x := v.(type) {
	case string:
		return x, nil
	case json.Number:
		return x.String(), nil
	default:
		b, _ := json.Marshal(x)
		return string(b), nil
	}
}

// Time is a time.Time that prints in a form fit for file names,
// 20060102T150405.000Z; its methods (Format, Unix, …) are time.Time's.
type Time struct{ time.Time }

func (t Time) String() string { return t.UTC().Format("20060102T150405.000Z") }
