package host

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/vrsky/vrsky/platform/blob"
	"github.com/vrsky/vrsky/platform/egress"
)

// Env gives a pool the capabilities behind the ABI's I/O functions. The
// runtime implements them (NATS, object store, KV); a nil field makes its
// functions answer abi.ErrUnavailable. The host enforces scoping (tenant
// subjects, tenant keys, integration KV prefix, manifest hosts) before it
// calls them, so implementations need not.
type Env struct {
	// Messaging publishes and requests on NATS.
	Messaging Messaging
	// Objects reads and writes the object store; blob.Store satisfies it.
	Objects Objects
	// KV is a key-value store; keys arrive already scoped to the
	// integration.
	KV KV
	// HTTP performs outbound HTTP. Nil uses the host's client, which does
	// not follow redirects (a redirect could leave the allowed hosts) and,
	// unless Config.AllowPrivateNetworks, refuses to connect to loopback,
	// private, link-local and unspecified addresses whatever the manifest
	// says (checked on the resolved address, so DNS cannot smuggle them).
	// A custom HTTPDoer must make those checks itself.
	HTTP HTTPDoer
}

// Messaging is NATS as the guest sees it. Subjects are already checked to
// be the tenant's own.
type Messaging interface {
	// Publish sends data on subject.
	Publish(ctx context.Context, subject string, data []byte) error
	// Request sends data on subject and returns the first reply, waiting up
	// to timeout.
	Request(ctx context.Context, subject string, data []byte, timeout time.Duration) ([]byte, error)
}

// Objects is the part of blob.Store the host uses: streaming get and put by
// key. Keys are already checked to belong to the tenant.
type Objects interface {
	Get(ctx context.Context, key string) (io.ReadCloser, blob.Info, error)
	Put(ctx context.Context, key string, r io.Reader) (blob.Info, error)
}

var _ Objects = blob.Store(nil)

// KV is a key-value store. Keys arrive as "<tenant>.<integration>.<key>".
type KV interface {
	// Get returns the value, or an error wrapping ErrNotFound.
	Get(ctx context.Context, key string) ([]byte, error)
	// Put stores value under key.
	Put(ctx context.Context, key string, value []byte) error
	// Delete removes key; a missing key is not an error.
	Delete(ctx context.Context, key string) error
}

// HTTPDoer performs an HTTP request (http.Client satisfies it).
type HTTPDoer interface {
	Do(*http.Request) (*http.Response, error)
}

// ErrNotFound is what KV implementations wrap for a missing key
// (blob.ErrNotFound is recognised for objects too).
var ErrNotFound = errors.New("not found")

// ErrDenied is what Env implementations wrap for a request they refuse by
// a scope of their own (the runtime's: objects written outside the
// integration's prefix); the guest sees abi.ErrDenied.
var ErrDenied = errors.New("denied")

// ErrTooLarge is what Env implementations wrap for a write over a bound
// of theirs (the runtime's: the step KV bucket is full); the guest sees
// abi.ErrTooLarge.
var ErrTooLarge = errors.New("too large")

// ErrPrivateAddress is returned when the host's HTTP client refuses an
// address that is not public.
var ErrPrivateAddress = egress.ErrDenied

func newHTTPClient(allowPrivate bool) *http.Client {
	policy := egress.Public
	if allowPrivate {
		policy = egress.All
	}
	d := &net.Dialer{Timeout: 10 * time.Second, Control: policy.Control}
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext:         d.DialContext,
			TLSHandshakeTimeout: 10 * time.Second,
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     90 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
