package slack_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	httpconn "github.com/vrsky/vrsky/builtin/http"
	"github.com/vrsky/vrsky/builtin/slack"
	"github.com/vrsky/vrsky/platform/schema"
	"github.com/vrsky/vrsky/runtime"
	"github.com/vrsky/vrsky/runtime/runtimetest"
)

// fakeSlack speaks Slack's incoming-webhook answers: "ok" for a good
// post; 400 invalid_payload for a body that is not JSON or a block
// without a type (Slack itself says invalid_blocks for the latter); 400
// no_text for nothing to show; 403 action_prohibited, 404
// channel_not_found, 410 channel_is_archived for the channels named so; 404
// no_service on another path; 429 rate_limited with Retry-After while
// limited > 0; 500 while broken.
type fakeSlack struct {
	srv *httptest.Server
	mu  sync.Mutex
	// posts are the accepted bodies, decoded.
	posts []map[string]any
	// arrivals are the times of every request.
	arrivals []time.Time
	// limited is how many more requests get a 429; retryAfter its header.
	limited    int
	retryAfter string
	limitedAt  time.Time
	broken     bool
}

func newFakeSlack(t *testing.T) *fakeSlack {
	f := &fakeSlack{retryAfter: "1"}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeSlack) url() string { return f.srv.URL + "/services/T000/B000/XXXX" }

func (f *fakeSlack) serve(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.arrivals = append(f.arrivals, time.Now())
	answer := func(code int, text string) {
		w.WriteHeader(code)
		_, _ = io.WriteString(w, text)
	}
	if r.URL.Path != "/services/T000/B000/XXXX" {
		answer(404, "no_service")
		return
	}
	if f.broken {
		answer(500, "internal_error")
		return
	}
	if f.limited > 0 {
		f.limited--
		w.Header().Set("Retry-After", f.retryAfter)
		f.limitedAt = time.Now()
		answer(429, "rate_limited")
		return
	}
	var m map[string]any
	if json.Unmarshal(b, &m) != nil || r.Header.Get("Content-Type") != "application/json; charset=utf-8" {
		answer(400, "invalid_payload")
		return
	}
	blocks, _ := m["blocks"].([]any)
	for _, bl := range blocks {
		if o, _ := bl.(map[string]any); o == nil || o["type"] == nil {
			answer(400, "invalid_payload")
			return
		}
	}
	if m["text"] == nil && len(blocks) == 0 {
		answer(400, "no_text")
		return
	}
	switch m["channel"] {
	case "#forbidden":
		answer(403, "action_prohibited")
		return
	case "#gone":
		answer(404, "channel_not_found")
		return
	case "#archived":
		answer(410, "channel_is_archived")
		return
	}
	f.posts = append(f.posts, m)
	answer(200, "ok")
}

func (f *fakeSlack) accepted() []map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]map[string]any(nil), f.posts...)
}

func (f *fakeSlack) requests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.arrivals)
}

func newSink(t *testing.T, cfg string) runtime.Sink {
	t.Helper()
	sk, err := slack.Sink.NewSink(json.RawMessage(cfg), runtime.Env{})
	if err != nil {
		t.Fatalf("NewSink(%s): %v", cfg, err)
	}
	t.Cleanup(func() { sk.Close() })
	return sk
}

func msg(id, data string, hdr ...string) *runtime.Message {
	h := runtime.Header{}
	for i := 0; i+1 < len(hdr); i += 2 {
		h.Set(hdr[i], hdr[i+1])
	}
	return &runtime.Message{ID: id, Header: h, Data: []byte(data)}
}

func TestSlackPosts(t *testing.T) {
	f := newFakeSlack(t)
	t.Setenv("SLACK_URL", f.url())
	for _, tc := range []struct {
		name string
		cfg  string
		msg  *runtime.Message
		want map[string]any
	}{
		{"default text is the payload as a code block", `{"webhook_url_env":"SLACK_URL"}`,
			msg("1", `{"total":1200,"note":"<b> & co"}`),
			map[string]any{"text": "```\n{\"total\":1200,\"note\":\"&lt;b&gt; &amp; co\"}\n```"}},
		{"text template with fields and a header, escaped", `{"webhook_url_env":"SLACK_URL","text":"*Order {{id}}* from {{customer.name}} ({{header:Vrsky-Integration}}): {{total}} <https://shop/o|open>","channel":"#sales","username":"vrsky","icon_emoji":":moneybag:"}`,
			msg("2", `{"id":"A-1","total":1200.5,"customer":{"name":"Ann <ann@x>"}}`, "Vrsky-Integration", "orders"),
			map[string]any{"text": "*Order A-1* from Ann &lt;ann@x&gt; (orders): 1200.5 <https://shop/o|open>",
				"channel": "#sales", "username": "vrsky", "icon_emoji": ":moneybag:"}},
		{"blocks from a field", `{"webhook_url_env":"SLACK_URL","blocks_field":"slack.blocks"}`,
			msg("3", `{"slack":{"blocks":[{"type":"section","text":{"type":"mrkdwn","text":"hi <@U1>"}}]}}`),
			map[string]any{"blocks": []any{map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": "hi <@U1>"}}}}},
		{"blocks with a fallback text", `{"webhook_url_env":"SLACK_URL","blocks_field":"blocks","text":"{{title}}"}`,
			msg("4", `{"title":"Deploy","blocks":[{"type":"divider"}]}`),
			map[string]any{"text": "Deploy", "blocks": []any{map[string]any{"type": "divider"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(f.accepted())
			if err := newSink(t, tc.cfg).Deliver(context.Background(), tc.msg); err != nil {
				t.Fatal(err)
			}
			posts := f.accepted()[before:]
			if len(posts) != 1 || !reflect.DeepEqual(posts[0], tc.want) {
				t.Fatalf("Slack got %v, want exactly %v", posts, tc.want)
			}
		})
	}
}

func TestSlackResponses(t *testing.T) {
	f := newFakeSlack(t)
	t.Setenv("SLACK_URL", f.url())
	t.Setenv("SLACK_WRONG_PATH", f.srv.URL+"/services/nope")
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	t.Setenv("SLACK_DOWN", "http://"+ln.Addr().String()+"/services/x")
	ln.Close()
	for _, tc := range []struct {
		name      string
		cfg       string
		data      string
		setup     func()
		wantErr   string // "" = delivered
		permanent bool
	}{
		{"ok", `{"webhook_url_env":"SLACK_URL"}`, `{}`, nil, "", false},
		{"invalid_payload", `{"webhook_url_env":"SLACK_URL","blocks_field":"b"}`, `{"b":[{"text":"no type"}]}`, nil, "400 Bad Request: invalid_payload", true},
		{"no_text", `{"webhook_url_env":"SLACK_URL","blocks_field":"b"}`, `{"b":[]}`, nil, "400 Bad Request: no_text", true},
		{"action_prohibited", `{"webhook_url_env":"SLACK_URL","channel":"#forbidden"}`, `{}`, nil, "403 Forbidden: action_prohibited", true},
		{"channel_not_found", `{"webhook_url_env":"SLACK_URL","channel":"#gone"}`, `{}`, nil, "404 Not Found: channel_not_found", true},
		{"channel_is_archived", `{"webhook_url_env":"SLACK_URL","channel":"#archived"}`, `{}`, nil, "410 Gone: channel_is_archived", true},
		{"no_service", `{"webhook_url_env":"SLACK_WRONG_PATH"}`, `{}`, nil, "404 Not Found: no_service", true},
		{"rate limited", `{"webhook_url_env":"SLACK_URL"}`, `{}`, func() { f.limited, f.retryAfter = 1, "0" }, "429 Too Many Requests: rate_limited", false},
		{"server error", `{"webhook_url_env":"SLACK_URL"}`, `{}`, func() { f.broken = true }, "500 Internal Server Error: internal_error", false},
		{"server down", `{"webhook_url_env":"SLACK_DOWN"}`, `{}`, nil, "connection refused", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.mu.Lock()
			f.limited, f.broken = 0, false
			if tc.setup != nil {
				tc.setup()
			}
			f.mu.Unlock()
			err := newSink(t, tc.cfg).Deliver(context.Background(), msg("m", tc.data))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || runtime.IsPermanent(err) != tc.permanent {
				t.Fatalf("err = %v (permanent %v), want %q permanent %v", err, runtime.IsPermanent(err), tc.wantErr, tc.permanent)
			}
			if strings.Contains(err.Error(), "/services/") {
				t.Fatalf("error %q leaks the webhook URL", err)
			}
		})
	}
}

func TestSlackMissingFields(t *testing.T) {
	f := newFakeSlack(t)
	t.Setenv("SLACK_URL", f.url())
	for _, tc := range []struct{ name, cfg, data, want string }{
		{"text field", `{"webhook_url_env":"SLACK_URL","text":"total {{order.total}}"}`, `{"order":{}}`, "field order.total is missing"},
		{"text header", `{"webhook_url_env":"SLACK_URL","text":"{{header:X-Shop}}"}`, `{}`, "header X-Shop is missing"},
		{"blocks field", `{"webhook_url_env":"SLACK_URL","blocks_field":"slack.blocks"}`, `{"slack":{}}`, "field slack.blocks is missing"},
		{"blocks not an array", `{"webhook_url_env":"SLACK_URL","blocks_field":"blocks"}`, `{"blocks":"hi"}`, "not an array"},
		{"payload not JSON", `{"webhook_url_env":"SLACK_URL","text":"{{a}}"}`, `a=1`, "not JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := newSink(t, tc.cfg).Deliver(context.Background(), msg("m", tc.data))
			if !runtime.IsPermanent(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want a permanent error containing %q", err, tc.want)
			}
		})
	}
	if n := f.requests(); n != 0 {
		t.Fatalf("%d posts reached Slack, want 0", n)
	}
}

// TestSlackRetryAfterIsShared: after a 429 with Retry-After: 1, neither
// the sink that got it nor another sink on the same webhook posts before
// the second is over.
func TestSlackRetryAfterIsShared(t *testing.T) {
	f := newFakeSlack(t)
	t.Setenv("SLACK_URL", f.url())
	a := newSink(t, `{"webhook_url_env":"SLACK_URL"}`)
	b := newSink(t, `{"webhook_url_env":"SLACK_URL","text":"from b"}`)
	f.mu.Lock()
	f.limited, f.retryAfter = 1, "1"
	f.mu.Unlock()
	if err := a.Deliver(context.Background(), msg("1", `{}`)); err == nil || runtime.IsPermanent(err) {
		t.Fatalf("err = %v, want a retryable 429", err)
	}
	var wg sync.WaitGroup
	for _, s := range []runtime.Sink{b, a} {
		wg.Go(func() {
			if err := s.Deliver(context.Background(), msg("2", `{}`)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.arrivals) != 3 || len(f.posts) != 2 {
		t.Fatalf("%d requests, %d posts; want 3 and 2", len(f.arrivals), len(f.posts))
	}
	for _, at := range f.arrivals[1:] {
		if gap := at.Sub(f.limitedAt); gap < time.Second {
			t.Fatalf("a post came %s after the 429, before its Retry-After of 1s", gap)
		}
	}
}

// TestSlackCloseEndsTheWait: a sink closing while it waits out a long
// Retry-After gives up with a retryable error instead of holding the
// pipeline's drain.
func TestSlackCloseEndsTheWait(t *testing.T) {
	f := newFakeSlack(t)
	t.Setenv("SLACK_URL", f.url())
	sk, err := slack.Sink.NewSink(json.RawMessage(`{"webhook_url_env":"SLACK_URL"}`), runtime.Env{})
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.limited, f.retryAfter = 1, "120"
	f.mu.Unlock()
	_ = sk.Deliver(context.Background(), msg("1", `{}`))
	done := make(chan error, 1)
	go func() { done <- sk.Deliver(context.Background(), msg("2", `{}`)) }()
	sk.Close()
	select {
	case err := <-done:
		if err == nil || runtime.IsPermanent(err) || !strings.Contains(err.Error(), "rate limit") {
			t.Fatalf("err = %v, want a retryable rate-limit error", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Deliver still waiting after Close")
	}
	if n := f.requests(); n != 1 {
		t.Fatalf("%d requests, want only the rate-limited one", n)
	}
}

func TestSlackBadConfig(t *testing.T) {
	t.Setenv("SLACK_NOT_URL", "hooks.slack.com/services/x")
	t.Setenv("SLACK_OK", "https://hooks.slack.com/services/x")
	for _, tc := range []struct{ name, cfg, field, want string }{
		{"env unset", `{"webhook_url_env":"VRSKY_TEST_UNSET_SLACK"}`, "webhook_url_env", "VRSKY_TEST_UNSET_SLACK is not set"},
		{"env not a URL", `{"webhook_url_env":"SLACK_NOT_URL"}`, "webhook_url_env", "does not hold an http(s) URL"},
		{"bad template", `{"webhook_url_env":"SLACK_OK","text":"{{oops"}`, "text", "unclosed"},
		{"unknown field", `{"webhook_url_env":"SLACK_OK","token":"x"}`, "", "unknown field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := slack.Sink.NewSink(json.RawMessage(tc.cfg), runtime.Env{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewSink err = %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "hooks.slack.com") {
				t.Fatalf("error %q quotes the secret URL", err)
			}
			err = slack.Sink.Check(context.Background(), json.RawMessage(tc.cfg), runtime.Env{})
			var fe *runtime.SpecError
			if tc.field != "" && (!errors.As(err, &fe) || fe.Field != tc.field) {
				t.Fatalf("Check: %v, want a SpecError on %q", err, tc.field)
			}
		})
	}
}

func TestSlackSchema(t *testing.T) {
	s, err := schema.Compile("slack", slack.Sink.ConfigSchema)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		cfg string
		ok  bool
	}{
		{`{"webhook_url_env":"SLACK"}`, true},
		{`{"webhook_url_env":"SLACK","text":"{{a}}","blocks_field":"x.blocks","channel":"#c","username":"u","icon_emoji":":ok:","timeout":"5s","max_concurrency":2}`, true},
		{`{}`, false},
		{`{"webhook_url":"https://hooks.slack.com/x"}`, false},
		{`{"webhook_url_env":"SLACK","icon_emoji":"ok"}`, false},
		{`{"webhook_url_env":"SLACK","max_concurrency":0}`, false},
	} {
		var doc any
		_ = json.Unmarshal([]byte(c.cfg), &doc)
		if fe := s.Validate(doc, "config"); (fe == nil) != c.ok {
			t.Errorf("%s: %v, want ok=%v", c.cfg, fe, c.ok)
		}
	}
}

// TestSlackEndToEnd runs webhook → slack through a real engine: the
// connector registers, its config passes the schema and Check at create
// time, `when` routes only big orders, and a message Slack refuses for
// good is dead-lettered at once with Slack's error.
func TestSlackEndToEnd(t *testing.T) {
	f := newFakeSlack(t)
	t.Setenv("SLACK_URL", f.url())
	h := runtimetest.Start(t, []runtime.Connector{httpconn.Webhook, slack.Sink})
	h.Create(t, `name: alerts
source: {connector: http-webhook, config: {path: alerts}}
sinks:
  - name: alert
    connector: slack
    when: 'total > 1000'
    config: {webhook_url_env: SLACK_URL, text: "Big order {{id}}: {{total}}"}
retry: {max_attempts: 3, initial_backoff: 50ms, max_backoff: 100ms}
`)
	for _, body := range []string{`{"id":"a","total":5}`, `{"id":"b","total":1500}`, `{"total":2000}`} {
		resp, err := h.Engine.Hooks().Serve(context.Background(), h.Tenant, "alerts", &runtime.HookRequest{Method: "POST", Header: runtime.Header{}, Body: []byte(body)})
		if err != nil || resp.Status != http.StatusAccepted {
			t.Fatalf("hook: %v %+v", err, resp)
		}
	}
	runtimetest.WaitFor(t, 30*time.Second, "one post and one dead letter", func() bool {
		return len(f.accepted()) == 1 && len(h.DeadLetters(t, "alerts")) == 1
	})
	if got := f.accepted()[0]["text"]; got != "Big order b: 1500" {
		t.Fatalf("Slack got %q", got)
	}
	dl := h.DeadLetters(t, "alerts")[0]
	if dl.Attempts != 1 || !strings.Contains(dl.Error, "field id is missing") {
		t.Fatalf("dead letter %+v, want one attempt naming the missing field", dl)
	}
	if n := f.requests(); n != 1 {
		t.Fatalf("%d requests reached Slack, want 1", n)
	}
}
