package http

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vrsky/vrsky/builtin/internal/httpx"
	"github.com/vrsky/vrsky/builtin/internal/msgtmpl"
	"github.com/vrsky/vrsky/runtime/connector"
)

//go:embed sink.schema.json
var sinkSchema []byte

// Sink is the http sink connector. Without `batch` it builds a plain
// connector.Sink (one request per message); with it, a connector.BatchSink
// (one request per batch, a JSON array of the payloads).
var Sink = connector.Connector{
	Name:         "http",
	Version:      "1.0.0",
	Kind:         connector.KindSink,
	Description:  "Delivers each message, or a batch as a JSON array, as an HTTP request; 2xx is success, 408/429/5xx are retried, other 4xx are permanent.",
	ConfigSchema: sinkSchema,
	Builtin:      true,
	NewSink: func(cfg json.RawMessage, env connector.Env) (connector.Sink, error) {
		c, err := decodeSinkConfig(cfg)
		if err != nil {
			return nil, err
		}
		s := newSink(c, env)
		if c.Batch != nil {
			return &batchSink{sink: s}, nil
		}
		return s, nil
	},
	// Check verifies at create time what the schema cannot: templates
	// parse and the secrets' variables are set.
	Check: func(_ context.Context, cfg json.RawMessage, _ connector.Env) error {
		_, err := decodeSinkConfig(cfg)
		return err
	},
}

func decodeSinkConfig(cfg json.RawMessage) (*compiled, error) {
	var c SinkConfig
	dec := json.NewDecoder(bytes.NewReader(cfg))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("http sink config: %w", err)
	}
	cc, err := c.withDefaults().compile()
	if err != nil {
		return nil, fmt.Errorf("http sink config: %w", err)
	}
	return cc, nil
}

// sink delivers one message per request.
type sink struct {
	c      *compiled
	client *http.Client
	limit  httpx.Limit
	log    *slog.Logger
	// timeout bounds one request, its response's body included (a
	// context per send: the client's own Timeout cost ten allocations a
	// request more).
	timeout time.Duration
	// what names the requests of a static URL in errors, made once.
	what string
	// templated: the URL or a header refers to the message; needPayload:
	// to a payload field, so a claim-checked payload is read into memory.
	templated, needPayload bool
}

// batchSink delivers a batch per request.
type batchSink struct{ *sink }

var (
	_ connector.Sink      = (*sink)(nil)
	_ connector.BatchSink = (*batchSink)(nil)
)

func newSink(c *compiled, env connector.Env) *sink {
	log := env.Logger
	if log == nil {
		log = slog.Default()
	}
	conns := c.MaxConcurrency
	if conns == 0 && c.Batch != nil {
		conns = 4 // the pipeline's batch workers
	}
	s := &sink{
		c:       c,
		client:  httpx.NewClient(0, conns, env.Egress),
		limit:   httpx.NewLimit(c.MaxConcurrency),
		log:     log,
		timeout: time.Duration(c.Timeout),
	}
	tmpls := []*msgtmpl.Template{c.url}
	for _, h := range c.headers {
		tmpls = append(tmpls, h.tmpl)
	}
	for _, t := range tmpls {
		s.templated = s.templated || !t.Static()
		s.needPayload = s.needPayload || t.NeedsPayload()
	}
	if c.url.Static() {
		s.what = s.describe(c.URL)
	}
	return s
}

// describe names a request to target in errors: the method and the URL
// without its query or password.
func (s *sink) describe(target string) string {
	if s.what != "" {
		return s.what
	}
	return s.c.Method + " " + httpx.Redact(target)
}

// Deliver sends msg. It carries the message id as Idempotency-Key so an
// idempotent receiver can drop a redelivery. A claim-checked payload is
// streamed from the object store unless a template needs its fields.
func (s *sink) Deliver(ctx context.Context, msg *connector.Message) error {
	vars := &msgtmpl.Vars{Msg: msg, Payload: msg.Data}
	inline := !msg.Claimed()
	if s.needPayload && !inline {
		b, err := msg.Bytes(ctx)
		if err != nil {
			return err
		}
		vars.Payload, inline = b, true
	}
	target, cfgHdr, err := s.render(vars)
	vars.Release()
	if err != nil {
		return err
	}
	ct := msg.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/json"
	}
	v := []string{ct, msg.ID} // one allocation for the three values
	base := http.Header{
		"Content-Type":        v[0:1:1],
		"Idempotency-Key":     v[1:2:2],
		connector.HeaderMsgID: v[1:2:2],
	}
	// The message's trace context, its parent the delivery attempt's span
	// when tracing is on: the receiver joins the message's trace.
	if tp := msg.Header.Get(connector.HeaderTraceparent); tp != "" {
		base[connector.HeaderTraceparent] = []string{tp}
		if ts := msg.Header.Get(connector.HeaderTracestate); ts != "" {
			base[connector.HeaderTracestate] = []string{ts}
		}
	}
	if inline {
		return s.send(ctx, target, base, cfgHdr, vars.Payload, nil)
	}
	return s.send(ctx, target, base, cfgHdr, nil, msg)
}

// render evaluates the URL and header templates for one message. The
// headers are nil when no template refers to the message: send then adds
// the config's own.
func (s *sink) render(v *msgtmpl.Vars) (string, http.Header, error) {
	if !s.templated {
		return s.c.URL, nil, nil
	}
	hdr := make(http.Header, len(s.c.headers))
	target, err := s.c.url.Render(v, escapeURL)
	if err != nil {
		return "", nil, connector.Permanent(fmt.Errorf("url template: %w", err))
	}
	if _, err := url.Parse(target); err != nil {
		return "", nil, connector.Permanent(fmt.Errorf("url template rendered an invalid URL: %w", err))
	}
	for _, h := range s.c.headers {
		val, err := h.tmpl.Render(v, nil)
		if err != nil {
			return "", nil, connector.Permanent(fmt.Errorf("header %s template: %w", h.name, err))
		}
		if !httpx.ValidHeaderValue(val) {
			return "", nil, connector.Permanent(fmt.Errorf("header %s template: the value has control characters", h.name))
		}
		hdr.Set(h.name, val)
	}
	return target, hdr, nil
}

// escapeURL escapes a value inserted into a URL: for a path segment, or
// for a query after a '?'.
func escapeURL(v string, afterQuery bool) string {
	if afterQuery {
		return url.QueryEscape(v)
	}
	return url.PathEscape(v)
}

// send makes one request with body, or with the claim-checked payload of
// streamed when body is nil. Headers go on in order, a later one winning:
// base (per message or batch), the config's (cfgHdr when rendered, else
// as written), then auth.
func (s *sink) send(ctx context.Context, target string, base, cfgHdr http.Header, body []byte, streamed *connector.Message) error {
	what := s.describe(target)
	var sig string
	if s.c.secret != nil {
		mac := hmac.New(sha256.New, s.c.secret)
		if streamed == nil {
			mac.Write(body)
		} else if err := copyPayload(ctx, mac, streamed); err != nil {
			return fmt.Errorf("%s: sign the payload: %w", what, err)
		}
		sig = "sha256=" + hex.EncodeToString(mac.Sum(nil))
	}
	if err := s.limit.Acquire(ctx); err != nil {
		return fmt.Errorf("%s: wait for a free request slot: %w", what, err)
	}
	defer s.limit.Release()
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel() // after the response's body is read (Check)
	var rd io.Reader
	size := int64(len(body))
	if streamed == nil {
		rd = bytes.NewReader(body)
	} else {
		rc, err := streamed.Body(ctx) // streams a claim-checked payload from the object store
		if err != nil {
			return err
		}
		defer rc.Close()
		rd, size = rc, streamed.Size()
	}
	req, err := http.NewRequestWithContext(ctx, s.c.Method, target, rd)
	if err != nil {
		return connector.Permanent(fmt.Errorf("%s: build request: %w", what, err))
	}
	req.ContentLength = size
	req.Header = base // made for this request: no copy
	if cfgHdr != nil {
		for k, v := range cfgHdr {
			req.Header[k] = v
		}
	} else {
		for _, h := range s.c.headers {
			req.Header.Set(h.name, h.tmpl.String())
		}
	}
	if a := s.c.Auth; a != nil {
		switch a.Type {
		case AuthBearer:
			req.Header.Set("Authorization", "Bearer "+s.c.token)
		case AuthBasic:
			req.SetBasicAuth(a.Username, s.c.pass)
		case AuthHMAC:
			req.Header.Set(a.Header, sig)
		}
	}
	resp, err := s.client.Do(req)
	if err != nil {
		// A corrupt claim-checked payload stays permanent through the wrap.
		return httpx.DoError(what, err)
	}
	defer resp.Body.Close()
	return httpx.Check(what, resp)
}

func copyPayload(ctx context.Context, w io.Writer, msg *connector.Message) error {
	rc, err := msg.Body(ctx)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(w, rc)
	return err
}

// Close releases idle connections.
func (s *sink) Close() error {
	s.client.CloseIdleConnections()
	return nil
}

// Batching implements connector.BatchSink.
func (b *batchSink) Batching() connector.Batching {
	return connector.Batching{
		MaxMessages: b.c.Batch.MaxMessages,
		MaxWait:     time.Duration(b.c.Batch.MaxWait),
		Concurrency: b.c.MaxConcurrency,
	}
}

// batchGroup is the messages of a batch that render the same URL and
// headers: they go in one request.
type batchGroup struct {
	target string
	cfgHdr http.Header
	idx    []int
}

// DeliverBatch sends msgs as one JSON array per distinct rendered URL and
// header set (one request when the templates are static). Every message
// of a request shares its outcome. A payload that is not JSON, or that
// lacks a field a template needs, fails alone and permanently.
func (b *batchSink) DeliverBatch(ctx context.Context, msgs []*connector.Message) []error {
	errs := make([]error, len(msgs))
	payloads := make([][]byte, len(msgs))
	var groups []*batchGroup
	byKey := map[string]*batchGroup{}
	for i, m := range msgs {
		p, err := m.Bytes(ctx) // a batch is built in memory
		if err != nil {
			errs[i] = err
			continue
		}
		if !json.Valid(p) {
			errs[i] = connector.Permanent(errors.New("payload is not JSON, and a batch is a JSON array of payloads"))
			continue
		}
		payloads[i] = p
		vars := &msgtmpl.Vars{Msg: m, Payload: p}
		target, cfgHdr, err := b.render(vars)
		vars.Release()
		if err != nil {
			errs[i] = err
			continue
		}
		key := groupKey(target, cfgHdr)
		g := byKey[key]
		if g == nil {
			g = &batchGroup{target: target, cfgHdr: cfgHdr}
			byKey[key] = g
			groups = append(groups, g)
		}
		g.idx = append(g.idx, i)
	}
	for _, g := range groups {
		err := b.sendGroup(ctx, g, msgs, payloads)
		for _, i := range g.idx {
			errs[i] = err
		}
	}
	if !slices.ContainsFunc(errs, func(e error) bool { return e != nil }) {
		return nil
	}
	return errs
}

func groupKey(target string, hdr http.Header) string {
	if len(hdr) == 0 {
		return target
	}
	keys := make([]string, 0, len(hdr))
	for k := range hdr {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var sb strings.Builder
	sb.WriteString(target)
	for _, k := range keys {
		sb.WriteString("\n" + k + ": " + strings.Join(hdr[k], ","))
	}
	return sb.String()
}

func (b *batchSink) sendGroup(ctx context.Context, g *batchGroup, msgs []*connector.Message, payloads [][]byte) error {
	size := 1 + len(g.idx)
	for _, i := range g.idx {
		size += len(payloads[i])
	}
	body := make([]byte, 0, size)
	ids := sha256.New()
	body = append(body, '[')
	for n, i := range g.idx {
		if n > 0 {
			body = append(body, ',')
		}
		body = append(body, payloads[i]...)
		ids.Write([]byte(msgs[i].ID))
		ids.Write([]byte{0})
	}
	body = append(body, ']')
	base := http.Header{
		"Content-Type": {"application/json"},
		// The same messages batched the same way get the same key.
		"Idempotency-Key":  {"batch-" + hex.EncodeToString(ids.Sum(nil)[:16])},
		"Vrsky-Batch-Size": {strconv.Itoa(len(g.idx))},
	}
	return b.send(ctx, g.target, base, g.cfgHdr, body, nil)
}
