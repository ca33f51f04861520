package guest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
)

// Headers of a claim-checked message (ABI.md §7): the payload waits in the
// object store under Ref; Size and SHA256 describe it.
const (
	HeaderPayloadRef    = "Vrsky-Payload-Ref"
	HeaderPayloadSize   = "Vrsky-Payload-Size"
	HeaderPayloadSHA256 = "Vrsky-Payload-Sha256"
)

// ErrPayloadCorrupt: a claim-checked payload does not match its size or
// SHA-256 header. Retrying cannot help; return it as it is (permanent).
var ErrPayloadCorrupt = errors.New("claim-checked payload does not match its size or SHA-256")

// Claimed reports whether the payload waits in the object store instead
// of in Data (only a module with the objects capability sees that; any
// other gets the payload loaded).
func (m *Message) Claimed() bool {
	_, ok := m.Header(HeaderPayloadRef)
	return ok
}

// Payload returns the whole payload as a stream: Data for an ordinary
// message, the object for a claim-checked one, checked against its size
// and SHA-256 as it is read (the last Read reports ErrPayloadCorrupt on a
// mismatch). Close it when done.
func (m *Message) Payload() (io.ReadCloser, error) {
	ref, ok := m.Header(HeaderPayloadRef)
	if !ok {
		return io.NopCloser(bytes.NewReader(m.data)), nil
	}
	size, _ := m.Header(HeaderPayloadSize)
	sum, _ := m.Header(HeaderPayloadSHA256)
	n, err := strconv.ParseInt(size, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%w: %s %q", ErrPayloadCorrupt, HeaderPayloadSize, size)
	}
	obj, err := OpenObject(ref)
	if err != nil {
		return nil, fmt.Errorf("open payload %s: %w", ref, err)
	}
	return &checkedReader{obj: obj, left: n, want: sum, h: sha256.New()}, nil
}

// checkedReader reads an object and checks it against the headers.
type checkedReader struct {
	obj  *Object
	left int64
	want string
	h    hash.Hash
}

func (r *checkedReader) Read(p []byte) (int, error) {
	n, err := r.obj.Read(p)
	r.h.Write(p[:n])
	r.left -= int64(n)
	if r.left < 0 || (err == io.EOF && (r.left != 0 || hex.EncodeToString(r.h.Sum(nil)) != r.want)) {
		return n, ErrPayloadCorrupt
	}
	return n, err
}

func (r *checkedReader) Close() error { return r.obj.Close() }

// EmitObject emits one output whose payload is written by write into an
// object of its own, so that it never sits whole in guest memory: the
// output carries only the reference, its size and SHA-256, and the sinks
// stream it. Needs the objects capability. If write fails, the object is
// discarded and nothing is emitted.
func (m *Message) EmitObject(write func(w io.Writer) error) error {
	tenant, _ := m.Header("Vrsky-Tenant")
	integration, _ := m.Header("Vrsky-Integration")
	id, _ := m.Header("Vrsky-Msg-Id")
	if tenant == "" || integration == "" || id == "" {
		return errors.New("emit object: the message has no Vrsky-Tenant, Vrsky-Integration or Vrsky-Msg-Id header")
	}
	key := "payloads/" + tenant + "/" + integration + "/" + keySafe(id) + ".o" + strconv.Itoa(m.emitted)
	obj, err := CreateObject(key)
	if err != nil {
		return fmt.Errorf("emit object %s: %w", key, err)
	}
	cw := &countingWriter{w: obj, h: sha256.New()}
	if err := write(cw); err != nil {
		return err // the host discards the unclosed object after the call
	}
	if err := obj.Close(); err != nil {
		return fmt.Errorf("emit object %s: %w", key, err)
	}
	for _, h := range [][2]string{
		{HeaderPayloadRef, key},
		{HeaderPayloadSize, strconv.FormatInt(cw.n, 10)},
		{HeaderPayloadSHA256, hex.EncodeToString(cw.h.Sum(nil))},
	} {
		if err := m.SetHeader(h[0], h[1]); err != nil {
			return err
		}
	}
	return m.Emit(nil)
}

// countingWriter hashes and counts what passes to w.
type countingWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	return n, err
}

// keySafe maps the characters a message id may have but an object key
// segment may not (such as "=") to "_".
func keySafe(id string) string {
	b := []byte(id)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	return string(b)
}
