package http

import (
	"cmp"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/vrsky/vrsky/builtin/internal/httpx"
	"github.com/vrsky/vrsky/builtin/internal/msgtmpl"
	"github.com/vrsky/vrsky/runtime/connector"
)

// SinkConfig configures the http sink. The URL and header values are
// templates over the message (see builtin/internal/msgtmpl): {{order.id}}
// is a field of the JSON payload, {{header:Name}} a message header.
type SinkConfig struct {
	// URL receives each message (or each batch); a template. Inserted
	// values are escaped for a URL path, or a query after a '?'.
	URL string `json:"url"`
	// Method is POST (default), PUT or PATCH.
	Method string `json:"method,omitempty"`
	// Headers are added to every request; values are templates.
	Headers map[string]string `json:"headers,omitempty"`
	// Timeout bounds one request; default 10s.
	Timeout connector.Duration `json:"timeout,omitempty"`
	// Auth authenticates each request; none by default.
	Auth *AuthConfig `json:"auth,omitempty"`
	// Batch, when set, sends up to MaxMessages payloads in one request as
	// a JSON array. Without it each message is its own request.
	Batch *BatchConfig `json:"batch,omitempty"`
	// MaxConcurrency bounds the requests in flight at once; 0 leaves it
	// to the pipeline (64 deliveries at a time, 4 batches).
	MaxConcurrency int `json:"max_concurrency,omitempty"`
}

// AuthConfig says how the sink authenticates. Secrets are read from the
// environment variables named here when the sink starts.
type AuthConfig struct {
	// Type is bearer, basic or hmac.
	Type string `json:"type"`
	// TokenEnv names the variable holding the bearer token (bearer).
	TokenEnv string `json:"token_env,omitempty"`
	// Username is the basic-auth user (basic).
	Username string `json:"username,omitempty"`
	// PasswordEnv names the variable holding the password (basic).
	PasswordEnv string `json:"password_env,omitempty"`
	// SecretEnv names the variable holding the HMAC key (hmac).
	SecretEnv string `json:"secret_env,omitempty"`
	// Header carries the signature (hmac); default X-Signature-256.
	Header string `json:"header,omitempty"`
	// Algorithm is the HMAC hash (hmac); sha256, the only one, by default.
	Algorithm string `json:"algorithm,omitempty"`
}

// BatchConfig turns batching on.
type BatchConfig struct {
	// MaxMessages is the most payloads in one request; default 100.
	MaxMessages int `json:"max_messages,omitempty"`
	// MaxWait is how long a batch waits to fill after its first message;
	// default 50ms.
	MaxWait connector.Duration `json:"max_wait,omitempty"`
}

// Auth types.
const (
	AuthBearer = "bearer"
	AuthBasic  = "basic"
	AuthHMAC   = "hmac"
)

// withDefaults returns c with its defaults filled in.
func (c SinkConfig) withDefaults() SinkConfig {
	if c.Method == "" {
		c.Method = http.MethodPost
	}
	if c.Timeout == 0 {
		c.Timeout = connector.Duration(10 * time.Second)
	}
	if c.Auth != nil && c.Auth.Type == AuthHMAC {
		a := *c.Auth
		a.Header = cmp.Or(a.Header, "X-Signature-256")
		a.Algorithm = cmp.Or(a.Algorithm, "sha256")
		c.Auth = &a
	}
	if c.Batch != nil {
		b := *c.Batch
		b.MaxMessages = cmp.Or(b.MaxMessages, 100)
		b.MaxWait = cmp.Or(b.MaxWait, connector.Duration(50*time.Millisecond))
		c.Batch = &b
	}
	return c
}

// compiled is a validated config: its templates parsed, its secrets read.
type compiled struct {
	SinkConfig
	url     *msgtmpl.Template
	headers []headerTmpl
	token   string // bearer token
	pass    string // basic password
	secret  []byte // hmac key
}

type headerTmpl struct {
	name string
	tmpl *msgtmpl.Template
}

// compile validates c (defaults filled in) beyond what its JSON Schema
// checks: templates parse, secrets are set. Errors are *connector.SpecError
// naming the field.
func (c SinkConfig) compile() (*compiled, error) {
	out := &compiled{SinkConfig: c}
	bad := func(field, format string, args ...any) error {
		return &connector.SpecError{Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	if !strings.HasPrefix(c.URL, "http://") && !strings.HasPrefix(c.URL, "https://") {
		return nil, bad("url", "must start with http:// or https://")
	}
	t, err := msgtmpl.Parse(c.URL)
	if err != nil {
		return nil, bad("url", "%v", err)
	}
	_, host, _ := strings.Cut(c.URL, "://")
	if i := strings.IndexAny(host, "/?#"); i >= 0 {
		host = host[:i]
	}
	if host == "" || strings.Contains(host, "{{") {
		return nil, bad("url", "the host must be written out, not a template")
	}
	out.url = t
	switch c.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
	default:
		return nil, bad("method", "must be POST, PUT or PATCH")
	}
	if c.Timeout <= 0 {
		return nil, bad("timeout", "must be positive")
	}
	for name, v := range c.Headers {
		if !httpx.ValidHeaderName(name) {
			return nil, bad("headers", "%q is not a header name", name)
		}
		t, err := msgtmpl.Parse(v)
		if err != nil {
			return nil, bad("headers."+name, "%v", err)
		}
		if t.Static() && !httpx.ValidHeaderValue(v) {
			return nil, bad("headers."+name, "control characters are not allowed in a header value")
		}
		out.headers = append(out.headers, headerTmpl{name: name, tmpl: t})
	}
	if c.MaxConcurrency < 0 {
		return nil, bad("max_concurrency", "must not be negative")
	}
	if b := c.Batch; b != nil {
		if b.MaxMessages < 1 || b.MaxMessages > 10000 {
			return nil, bad("batch.max_messages", "must be between 1 and 10000")
		}
		if b.MaxWait <= 0 {
			return nil, bad("batch.max_wait", "must be positive")
		}
	}
	if a := c.Auth; a != nil {
		env := func(field, name string) (string, error) {
			if name == "" {
				return "", bad("auth."+field, "is required for auth type %s", a.Type)
			}
			v := os.Getenv(name)
			if v == "" {
				return "", bad("auth."+field, "%s is not set in vrsky's environment", name)
			}
			return v, nil
		}
		switch a.Type {
		case AuthBearer:
			out.token, err = env("token_env", a.TokenEnv)
		case AuthBasic:
			if a.Username == "" {
				return nil, bad("auth.username", "is required for auth type basic")
			}
			out.pass, err = env("password_env", a.PasswordEnv)
		case AuthHMAC:
			if a.Algorithm != "sha256" {
				return nil, bad("auth.algorithm", "only sha256 is supported")
			}
			var s string
			s, err = env("secret_env", a.SecretEnv)
			out.secret = []byte(s)
		default:
			return nil, bad("auth.type", "must be bearer, basic or hmac")
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
