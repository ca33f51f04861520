package slack

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/vrsky/vrsky/builtin/internal/msgtmpl"
	"github.com/vrsky/vrsky/runtime/connector"
)

// Config configures the slack sink.
type Config struct {
	// WebhookURLEnv names the environment variable holding the
	// incoming-webhook URL.
	WebhookURLEnv string `json:"webhook_url_env"`
	// Text is a template for the message text (see msgtmpl); default: the
	// payload as a code block, or none when blocks are sent.
	Text string `json:"text,omitempty"`
	// BlocksField is the dotted path of a payload field holding a Block
	// Kit blocks array.
	BlocksField string `json:"blocks_field,omitempty"`
	// Channel, Username and IconEmoji override the webhook's defaults.
	Channel   string `json:"channel,omitempty"`
	Username  string `json:"username,omitempty"`
	IconEmoji string `json:"icon_emoji,omitempty"`
	// Timeout bounds one request; default 10s.
	Timeout connector.Duration `json:"timeout,omitempty"`
	// MaxConcurrency bounds the posts in flight; default 1.
	MaxConcurrency int `json:"max_concurrency,omitempty"`
}

// compiled is a validated Config with its secret read and its template
// parsed.
type compiled struct {
	Config
	url  string
	text *msgtmpl.Template // nil: the default
}

func decodeConfig(raw json.RawMessage) (*compiled, error) {
	var c Config
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("slack sink config: %w", err)
	}
	cc, err := c.compile()
	if err != nil {
		return nil, fmt.Errorf("slack sink config: %w", err)
	}
	return cc, nil
}

// compile fills in defaults and checks what the schema cannot: the URL's
// variable is set and holds a URL, the template parses. Errors are
// *connector.SpecError naming the field.
func (c Config) compile() (*compiled, error) {
	bad := func(field, format string, args ...any) error {
		return &connector.SpecError{Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	if c.Timeout == 0 {
		c.Timeout = connector.Duration(10 * time.Second)
	}
	if c.MaxConcurrency == 0 {
		c.MaxConcurrency = 1
	}
	if c.Timeout < 0 {
		return nil, bad("timeout", "must be positive")
	}
	if c.MaxConcurrency < 0 {
		return nil, bad("max_concurrency", "must be at least 1")
	}
	if c.WebhookURLEnv == "" {
		return nil, bad("webhook_url_env", "is required")
	}
	out := &compiled{Config: c, url: os.Getenv(c.WebhookURLEnv)}
	if out.url == "" {
		return nil, bad("webhook_url_env", "%s is not set in vrsky's environment", c.WebhookURLEnv)
	}
	// Never quote the URL: it is the secret.
	if u, err := url.Parse(out.url); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, bad("webhook_url_env", "%s does not hold an http(s) URL", c.WebhookURLEnv)
	}
	if c.Text != "" {
		t, err := msgtmpl.Parse(c.Text)
		if err != nil {
			return nil, bad("text", "%v", err)
		}
		out.text = t
	}
	if c.BlocksField != "" && strings.ContainsAny(c.BlocksField, " \t") {
		return nil, bad("blocks_field", "must be a dotted field path like slack.blocks")
	}
	return out, nil
}
