package runtime

import (
	"io"
	"net/textproto"

	"github.com/google/uuid"

	"github.com/vrsky/vrsky/platform/blob"
)

// Standard message headers (DESIGN.md, Transport).
const (
	HeaderNatsMsgID     = "Nats-Msg-Id"
	HeaderMsgID         = "Vrsky-Msg-Id"
	HeaderTenant        = "Vrsky-Tenant"
	HeaderIntegration   = "Vrsky-Integration"
	HeaderContentType   = "Content-Type"
	HeaderTraceparent   = "Traceparent"
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
