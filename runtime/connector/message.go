package connector

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/textproto"
	"strconv"

	"github.com/google/uuid"

	"github.com/vrsky/vrsky/platform/blob"
	"github.com/vrsky/vrsky/runtime/internal/claimref"
)

// Standard message headers (DESIGN.md, Transport).
const (
	HeaderNatsMsgID     = "Nats-Msg-Id"
	HeaderMsgID         = "Vrsky-Msg-Id"
	HeaderTenant        = "Vrsky-Tenant"
	HeaderIntegration   = "Vrsky-Integration"
	HeaderContentType   = "Content-Type"
	HeaderTraceparent   = "Traceparent"
	HeaderTracestate    = "Tracestate"
	HeaderPayloadRef    = "Vrsky-Payload-Ref"
	HeaderPayloadSize   = "Vrsky-Payload-Size"
	HeaderPayloadSHA256 = "Vrsky-Payload-Sha256"
	// HeaderStage, HeaderError and HeaderAttempts describe a dead letter.
	HeaderStage    = "Vrsky-Stage"
	HeaderError    = "Vrsky-Error"
	HeaderAttempts = "Vrsky-Attempts"
	// HeaderAttemptLog is a JSON array of every failed attempt's number, time and error.
	HeaderAttemptLog = "Vrsky-Attempt-Log"
)

// Header holds message headers; keys are canonical MIME header keys. It has
// the same underlying type as nats.Header and http.Header.
type Header map[string][]string

// Get returns the first value of key, or "".
func (h Header) Get(key string) string {
	if v := h[textproto.CanonicalMIMEHeaderKey(key)]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Set replaces the values of key.
func (h Header) Set(key, value string) { h[textproto.CanonicalMIMEHeaderKey(key)] = []string{value} }

// Clone returns a deep copy.
func (h Header) Clone() Header {
	c := make(Header, len(h))
	for k, v := range h {
		c[k] = append([]string(nil), v...)
	}
	return c
}

// Message is one unit of work moving through a pipeline.
type Message struct {
	// ID is unique per message; it is the JetStream dedup id and travels
	// to sinks as the idempotency key.
	ID string
	// Header carries transport and user headers.
	Header Header
	// Data is the payload when it travels inline; nil when it is
	// claim-checked (see Claimed, Body).
	Data []byte
	// Stream, set by a source instead of Data, is read once when the
	// message is emitted: a payload over the claim-check threshold goes to
	// the object store as it is read, never whole in memory; a smaller one
	// becomes Data. An error from Stream (a reader that verifies a
	// signature at EOF, a client that hung up) fails the emit, and nothing
	// is stored.
	Stream io.Reader

	blobs blob.Store // where a claim-checked payload lives
}

// NewID returns a new message id: a UUIDv7, so ids sort by creation time.
func NewID() string { return uuid.Must(uuid.NewV7()).String() }

// PayloadPrefix starts the object-store key of every claim-checked
// payload: payloads/<tenant>/<integration>/...
const PayloadPrefix = "payloads/"

var (
	// ErrPayloadStore: the object store could not take or give a payload.
	ErrPayloadStore = errors.New("payload object store unavailable")
	// ErrPayloadCorrupt: a claim-checked payload does not match its digest.
	ErrPayloadCorrupt = errors.New("payload does not match its SHA-256")
)

// ErrPayloadRead: a streamed payload could not be read from its source
// (the source's error is wrapped too).
var ErrPayloadRead = errors.New("reading the payload failed")

func init() {
	claimref.Attach = func(msg any, store blob.Store) { msg.(*Message).blobs = store }
}

// Size is the payload's size in bytes, inline or claim-checked.
func (m *Message) Size() int64 {
	if ref := m.Header.Get(HeaderPayloadRef); ref != "" {
		n, _ := strconv.ParseInt(m.Header.Get(HeaderPayloadSize), 10, 64)
		return n
	}
	return int64(len(m.Data))
}

// Claimed reports whether the payload lives in the object store.
func (m *Message) Claimed() bool { return m.Header.Get(HeaderPayloadRef) != "" }

// Body opens the payload for reading: the inline bytes, or the
// claim-checked object streamed from the object store. A streamed payload
// whose digest does not match fails at EOF with a Permanent
// ErrPayloadCorrupt; an object store that cannot be reached fails with
// ErrPayloadStore, which is worth retrying.
func (m *Message) Body(ctx context.Context) (io.ReadCloser, error) {
	ref := m.Header.Get(HeaderPayloadRef)
	if ref == "" {
		return io.NopCloser(bytes.NewReader(m.Data)), nil
	}
	if m.blobs == nil {
		return nil, fmt.Errorf("%w: no object store for payload %s", ErrPayloadStore, ref)
	}
	r, _, err := m.blobs.Get(ctx, ref)
	if errors.Is(err, blob.ErrNotFound) {
		return nil, Permanent(fmt.Errorf("payload %s: %w", ref, err))
	}
	if err != nil {
		return nil, fmt.Errorf("%w: payload %s: %w", ErrPayloadStore, ref, err)
	}
	return &verifyingReader{rc: r, h: sha256.New(), want: m.Header.Get(HeaderPayloadSHA256), left: m.Size()}, nil
}

// Bytes reads the whole payload into memory.
func (m *Message) Bytes(ctx context.Context) ([]byte, error) {
	if !m.Claimed() {
		return m.Data, nil
	}
	r, err := m.Body(ctx)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b := bytes.NewBuffer(make([]byte, 0, m.Size()))
	if _, err := b.ReadFrom(r); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

type verifyingReader struct {
	rc   io.ReadCloser
	h    hash.Hash
	want string
	left int64
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	n, err := v.rc.Read(p)
	v.h.Write(p[:n])
	v.left -= int64(n)
	if err == io.EOF {
		if got := hex.EncodeToString(v.h.Sum(nil)); got != v.want || v.left != 0 {
			return n, Permanent(fmt.Errorf("%w: got %s, want %s", ErrPayloadCorrupt, got, v.want))
		}
	} else if errors.Is(err, blob.ErrCorrupt) {
		// The store's own check found it first.
		err = Permanent(fmt.Errorf("%w: %w", ErrPayloadCorrupt, err))
	} else if err != nil {
		err = fmt.Errorf("%w: %w", ErrPayloadStore, err)
	}
	return n, err
}

func (v *verifyingReader) Close() error { return v.rc.Close() }
