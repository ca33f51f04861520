package http

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/vrsky/vrsky/runtime"
)

//go:embed sink.schema.json
var sinkSchema []byte

// Sink is the http sink connector.
var Sink = runtime.Connector{
	Name:         "http",
	Version:      "1.0.0",
	Kind:         runtime.KindSink,
	Description:  "Delivers each message as an HTTP request; 2xx is success, 408/429/5xx are retried, other 4xx are permanent.",
	ConfigSchema: sinkSchema,
	Builtin:      true,
	NewSink: func(cfg json.RawMessage, env runtime.Env) (runtime.Sink, error) {
		var c SinkConfig
		if err := json.Unmarshal(cfg, &c); err != nil {
			return nil, fmt.Errorf("http sink config: %w", err)
		}
		return newSink(c)
	},
}

// SinkConfig configures the http sink.
type SinkConfig struct {
	// URL receives each message.
	URL string `json:"url"`
	// Method is POST (default), PUT or PATCH.
	Method string `json:"method,omitempty"`
	// Headers are added to every request.
	Headers map[string]string `json:"headers,omitempty"`
	// Timeout bounds one request; default 10s.
	Timeout runtime.Duration `json:"timeout,omitempty"`
}

type sink struct {
	cfg    SinkConfig
	client *http.Client
}

func newSink(c SinkConfig) (*sink, error) {
	if c.Method == "" {
		c.Method = http.MethodPost
	}
	if c.Timeout == 0 {
		c.Timeout = runtime.Duration(10 * time.Second)
	}
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
	}
	return &sink{cfg: c, client: &http.Client{Transport: tr, Timeout: time.Duration(c.Timeout)}}, nil
}

// Deliver sends msg. It carries the message id as Idempotency-Key so an
// idempotent receiver can drop a redelivery.
func (s *sink) Deliver(ctx context.Context, msg *runtime.Message) error {
	body, err := msg.Body(ctx) // streams a claim-checked payload from the object store
	if err != nil {
		return err
	}
	defer body.Close()
	req, err := http.NewRequestWithContext(ctx, s.cfg.Method, s.cfg.URL, body)
	if err != nil {
		return runtime.Permanent(fmt.Errorf("build request: %w", err))
	}
	req.ContentLength = msg.Size()
	ct := msg.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/json"
	}
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Idempotency-Key", msg.ID)
	req.Header.Set(runtime.HeaderMsgID, msg.ID)
	if tp := msg.Header.Get("Traceparent"); tp != "" {
		req.Header.Set("Traceparent", tp)
	}
	for k, v := range s.cfg.Headers {
		req.Header.Set(k, v)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", s.cfg.Method, s.cfg.URL, err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // reuse the connection
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	err = fmt.Errorf("%s %s: %s: %s", s.cfg.Method, s.cfg.URL, resp.Status, bytes.TrimSpace(snippet))
	if retryable(resp.StatusCode) {
		return err
	}
	return runtime.Permanent(err)
}

func retryable(code int) bool {
	return code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500
}

// Close releases idle connections.
func (s *sink) Close() error {
	s.client.CloseIdleConnections()
	return nil
}
