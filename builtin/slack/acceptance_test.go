package slack_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/vrsky/vrsky/builtin/slack"
	"github.com/vrsky/vrsky/runtime/connector"
	"github.com/vrsky/vrsky/runtime/connectortest"
)

// acceptanceURLEnv holds the webhook URL, named as a secret of tenant acme.
const acceptanceURLEnv = "VRSKY_SECRET_ACME__SLACK_ACCEPTANCE_URL"

// TestSinkAcceptance runs the connector acceptance suite on the slack
// sink against an httptest server playing Slack's incoming webhook: "ok"
// for a post with text, 429 rate_limited with Retry-After while limited
// (retryable: the sink waits it out and the pipeline retries), 404
// no_service while the webhook is revoked (permanent, as every 4xx but
// 408 and 429 is, see httpx.Check).
func TestSinkAcceptance(t *testing.T) {
	const path = "/services/T000/B000/ACCEPTANCE"
	var mu sync.Mutex
	var texts []string
	limited, revoked := false, false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		answer := func(code int, text string) {
			w.WriteHeader(code)
			_, _ = io.WriteString(w, text)
		}
		var m struct {
			Text *string `json:"text"`
		}
		switch {
		case r.Method != http.MethodPost || r.URL.Path != path || revoked:
			answer(http.StatusNotFound, "no_service")
		case limited:
			w.Header().Set("Retry-After", "1")
			answer(http.StatusTooManyRequests, "rate_limited")
		case r.Header.Get("Content-Type") != "application/json; charset=utf-8" || json.Unmarshal(b, &m) != nil:
			answer(http.StatusBadRequest, "invalid_payload")
		case m.Text == nil || *m.Text == "":
			answer(http.StatusBadRequest, "no_text")
		default:
			texts = append(texts, *m.Text)
			answer(http.StatusOK, "ok")
		}
	}))
	t.Cleanup(srv.Close)
	t.Setenv(acceptanceURLEnv, srv.URL+path)
	t.Setenv("VRSKY_SECRET_ACME__SLACK_NOT_A_URL", "hooks.slack.com/services/x")

	// n is the payload's n, as the template renders it.
	n := func(m *connector.Message) string {
		var v struct {
			N json.RawMessage `json:"n"`
		}
		if err := json.Unmarshal(m.Data, &v); err != nil {
			t.Fatalf("message %s: %v", m.ID, err)
		}
		return string(v.N)
	}
	jsonMsg := func(data string) *connector.Message {
		return &connector.Message{ID: connector.NewID(), Header: connector.Header{"Content-Type": {"application/json"}}, Data: []byte(data)}
	}
	connectortest.RunSink(t, connectortest.SinkCase{
		Connector: slack.Sink,
		Config:    json.RawMessage(`{"webhook_url_env":"` + acceptanceURLEnv + `","text":"{{header:Vrsky-Msg-Id}} n={{n}}","timeout":"30s"}`),
		Env:       connector.Env{Tenant: "acme", Integration: "acceptance", Name: "slack"},
		Bad: []connectortest.BadConfig{
			{Config: json.RawMessage(`{}`), Field: "webhook_url_env"},
			{Config: json.RawMessage(`{"webhook_url_env":"1BAD"}`), Field: "webhook_url_env"},
			{Config: json.RawMessage(`{"webhook_url_env":"VRSKY_SECRET_ACME__SLACK_ACCEPTANCE_UNSET"}`), Field: "webhook_url_env"},
			{Config: json.RawMessage(`{"webhook_url_env":"VRSKY_SECRET_ACME__SLACK_NOT_A_URL"}`), Field: "webhook_url_env"},
			{Config: json.RawMessage(`{"webhook_url_env":"` + acceptanceURLEnv + `","text":"{{oops"}`), Field: "text"},
			{Config: json.RawMessage(`{"webhook_url_env":"` + acceptanceURLEnv + `","icon_emoji":"smile"}`), Field: "icon_emoji"},
			{Config: json.RawMessage(`{"webhook_url_env":"` + acceptanceURLEnv + `","max_concurrency":0}`), Field: "max_concurrency"},
			{Config: json.RawMessage(`{"webhook_url_env":"` + acceptanceURLEnv + `","timeout":"ten seconds"}`), Field: "timeout"},
		},
		Messages: []*connector.Message{jsonMsg(`{"n":1}`), jsonMsg(`{"n":"two"}`)},
		Delivered: func(*testing.T) []string {
			mu.Lock()
			defer mu.Unlock()
			return append([]string(nil), texts...)
		},
		// The post's text is the rendered template.
		Key: func(m *connector.Message) string {
			v := n(m)
			var s string
			if json.Unmarshal([]byte(v), &s) == nil {
				v = s
			}
			return m.ID + " n=" + v
		},
		Fail: func(_ *testing.T, permanent bool) {
			mu.Lock()
			defer mu.Unlock()
			if permanent {
				revoked = true
			} else {
				limited = true
			}
		},
		Restore: func(*testing.T) {
			mu.Lock()
			defer mu.Unlock()
			limited, revoked = false, false
		},
	})
}
