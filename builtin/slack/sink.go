package slack

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/vrsky/vrsky/builtin/internal/httpx"
	"github.com/vrsky/vrsky/builtin/internal/msgtmpl"
	"github.com/vrsky/vrsky/runtime/connector"
)

//go:embed slack.schema.json
var schema []byte

// Sink is the slack sink connector.
var Sink = connector.Connector{
	Name:         "slack",
	Version:      "1.0.0",
	Kind:         connector.KindSink,
	Description:  "Posts each message to a Slack incoming webhook, as text from a template or as blocks from a field; waits out Slack's rate limits.",
	ConfigSchema: schema,
	Builtin:      true,
	NewSink: func(cfg json.RawMessage, env connector.Env) (connector.Sink, error) {
		c, err := decodeConfig(cfg)
		if err != nil {
			return nil, err
		}
		return newSink(c, env), nil
	},
	// Check verifies at create time that the webhook URL's variable is set
	// and that the text template parses.
	Check: func(_ context.Context, cfg json.RawMessage, _ connector.Env) error {
		_, err := decodeConfig(cfg)
		return err
	},
}

// what names the request in errors; the URL itself is a secret.
const what = "POST slack webhook"

type sink struct {
	c      *compiled
	client *http.Client
	limit  httpx.Limit
	pause  *pause
	log    *slog.Logger
	closed chan struct{}
	once   sync.Once
}

var _ connector.Sink = (*sink)(nil)

func newSink(c *compiled, env connector.Env) *sink {
	log := env.Logger
	if log == nil {
		log = slog.Default()
	}
	return &sink{
		c:      c,
		client: httpx.NewClient(time.Duration(c.Timeout), c.MaxConcurrency, env.Egress),
		limit:  httpx.NewLimit(c.MaxConcurrency),
		pause:  pauseFor(c.url),
		log:    log,
		closed: make(chan struct{}),
	}
}

// message is the body of an incoming-webhook post.
type message struct {
	Text      string          `json:"text,omitempty"`
	Blocks    json.RawMessage `json:"blocks,omitempty"`
	Channel   string          `json:"channel,omitempty"`
	Username  string          `json:"username,omitempty"`
	IconEmoji string          `json:"icon_emoji,omitempty"`
}

// Deliver posts msg.
func (s *sink) Deliver(ctx context.Context, msg *connector.Message) error {
	body, err := s.build(ctx, msg)
	if err != nil {
		return err
	}
	if err := s.limit.Acquire(ctx); err != nil {
		return fmt.Errorf("%s: wait for a free request slot: %w", what, err)
	}
	defer s.limit.Release()
	if err := s.pause.wait(ctx, s.closed); err != nil {
		return fmt.Errorf("%s: waiting out Slack's rate limit: %w", what, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.c.url, bytes.NewReader(body))
	if err != nil {
		return connector.Permanent(fmt.Errorf("%s: build request: %w", what, err))
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	resp, err := s.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			ue.URL = "(webhook URL)" // the URL is the secret
		}
		return httpx.DoError(what, err)
	}
	defer resp.Body.Close()
	err = httpx.Check(what, resp)
	var se *httpx.StatusError
	if errors.As(err, &se) && se.Code == http.StatusTooManyRequests {
		d := se.RetryAfter
		if d <= 0 {
			d = time.Second
		}
		s.pause.extend(d)
		s.log.Warn("slack rate limit: pausing posts to this webhook", "retry_after", d)
	}
	return err
}

// build renders the post for msg.
func (s *sink) build(ctx context.Context, msg *connector.Message) ([]byte, error) {
	payload, err := msg.Bytes(ctx)
	if err != nil {
		return nil, err
	}
	vars := &msgtmpl.Vars{Msg: msg, Payload: payload}
	defer vars.Release()
	m := message{Channel: s.c.Channel, Username: s.c.Username, IconEmoji: s.c.IconEmoji}
	if f := s.c.BlocksField; f != "" {
		raw, isArray, err := vars.FieldJSON(f)
		if err != nil {
			return nil, connector.Permanent(fmt.Errorf("blocks_field: %w", err))
		}
		if !isArray {
			return nil, connector.Permanent(fmt.Errorf("blocks_field: field %s is not an array of blocks", f))
		}
		m.Blocks = raw
	}
	switch {
	case s.c.text != nil:
		if m.Text, err = s.c.text.Render(vars, escape); err != nil {
			return nil, connector.Permanent(fmt.Errorf("text template: %w", err))
		}
	case m.Blocks == nil:
		m.Text = codeBlock(payload)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, connector.Permanent(fmt.Errorf("encode the slack message: %w", err))
	}
	return b, nil
}

// codeBlockMax is how much of a payload the default text shows.
const codeBlockMax = 3000

// codeBlock renders a payload as a Slack code block, cut at codeBlockMax.
func codeBlock(p []byte) string {
	s := strings.ToValidUTF8(string(p), "\uFFFD")
	if len(s) > codeBlockMax {
		cut := codeBlockMax
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "\n…"
	}
	s = strings.ReplaceAll(s, "```", "'''")
	return "```\n" + escape(s, false) + "\n```"
}

var slackEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// escape escapes the three characters Slack's text format reserves.
func escape(s string, _ bool) string { return slackEscaper.Replace(s) }

// Close ends any wait for a rate limit and releases idle connections.
func (s *sink) Close() error {
	s.once.Do(func() { close(s.closed) })
	s.client.CloseIdleConnections()
	return nil
}

// pause is the rate-limit state of one webhook URL, shared by every slack
// sink in the process that posts to it: after a 429, none of them posts
// before Retry-After has passed.
type pause struct {
	mu    sync.Mutex
	until time.Time
}

// pauses holds a *pause per webhook URL.
var pauses sync.Map

func pauseFor(u string) *pause {
	p, _ := pauses.LoadOrStore(u, &pause{})
	return p.(*pause)
}

// maxPause caps a Retry-After, so a bogus one cannot stall a sink for long.
const maxPause = 5 * time.Minute

func (p *pause) extend(d time.Duration) {
	until := time.Now().Add(min(d, maxPause))
	p.mu.Lock()
	if until.After(p.until) {
		p.until = until
	}
	p.mu.Unlock()
}

// wait returns once the pause is over, or with an error when ctx ends or
// closed is closed first.
func (p *pause) wait(ctx context.Context, closed <-chan struct{}) error {
	for {
		p.mu.Lock()
		d := time.Until(p.until)
		p.mu.Unlock()
		if d <= 0 {
			return nil
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-closed:
			t.Stop()
			return errors.New("the sink is closing")
		}
	}
}
