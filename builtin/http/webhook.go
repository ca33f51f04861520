package http

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"mime"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vrsky/vrsky/internal/jsonenc"
	"github.com/vrsky/vrsky/runtime/connector"
)

//go:embed webhook.schema.json
var webhookSchema []byte

// Webhook is the http-webhook source connector.
var Webhook = connector.Connector{
	Name:         "http-webhook",
	Version:      "1.0.0",
	Kind:         connector.KindSource,
	Description:  "Receives messages as HTTP POSTs to /hooks/{tenant}/{path}; answers 202 once they are durable, or in sync mode with what the steps made of them.",
	ConfigSchema: webhookSchema,
	Builtin:      true,
	NewSource: func(cfg json.RawMessage, env connector.Env) (connector.Source, error) {
		var c WebhookConfig
		if err := json.Unmarshal(cfg, &c); err != nil {
			return nil, fmt.Errorf("http-webhook config: %w", err)
		}
		return newWebhook(c, env)
	},
	// Check verifies at create time that the secret's variable is set.
	Check: func(_ context.Context, cfg json.RawMessage, env connector.Env) error {
		var c WebhookConfig
		if err := json.Unmarshal(cfg, &c); err != nil {
			return fmt.Errorf("http-webhook config: %w", err)
		}
		_, err := newWebhook(c, env)
		return err
	},
}

// WebhookConfig configures the http-webhook source.
type WebhookConfig struct {
	// Path is the hook's path under /hooks/{tenant}/.
	Path string `json:"path"`
	// SecretEnv names an environment variable holding an HMAC-SHA256
	// secret. When set, requests must carry X-Hub-Signature-256:
	// sha256=<hex HMAC of the body> (GitHub's form).
	SecretEnv string `json:"secret_env,omitempty"`
	// ContentTypes, when set, lists the media types accepted.
	ContentTypes []string `json:"content_types,omitempty"`
	// MaxBodyBytes, when set, refuses larger bodies with 413. The API's
	// own limit (64 MiB by default) applies either way.
	MaxBodyBytes int64 `json:"max_body_bytes,omitempty"`
	// Sync makes the hook wait for the steps to take the message and
	// answer with what they made of it (see serve).
	Sync bool `json:"sync,omitempty"`
	// SyncTimeout bounds that wait; default 10s. The API's hook timeout
	// (30s by default) bounds it too.
	SyncTimeout connector.Duration `json:"sync_timeout,omitempty"`
	// Batch, when set, makes each request carry many messages (see
	// WebhookBatch).
	Batch *WebhookBatch `json:"batch,omitempty"`
}

// WebhookBatch lets one request carry many messages: the body is split
// into one message per JSON value, all stored with one wait for
// JetStream, and the 202 lists their ids in order.
type WebhookBatch struct {
	// Format is how the body holds the messages: "ndjson" (one JSON
	// value per line) or "json-array" (a JSON array of them).
	Format string `json:"format"`
	// MaxMessages refuses requests with more messages (413); default and
	// most 1000.
	MaxMessages int `json:"max_messages,omitempty"`
}

// Batch formats.
const (
	BatchNDJSON    = "ndjson"
	BatchJSONArray = "json-array"
)

// maxBatchMessages bounds a batch request: its publishes are in flight at
// once, within the NATS client's window of pending acknowledgements.
const maxBatchMessages = 1000

// defaultBatchBodyBytes bounds a batch body, held in memory to be split,
// when max_body_bytes does not.
const defaultBatchBodyBytes = 8 << 20

type webhook struct {
	cfg    WebhookConfig
	secret []byte
	env    connector.Env
	bound  bool // Bind claimed the path (before Run, in the same goroutine)
}

var _ connector.Binder = (*webhook)(nil)

func newWebhook(c WebhookConfig, env connector.Env) (*webhook, error) {
	if c.MaxBodyBytes < 0 {
		return nil, &connector.SpecError{Field: "max_body_bytes", Reason: "must not be negative"}
	}
	if c.SyncTimeout < 0 {
		return nil, &connector.SpecError{Field: "sync_timeout", Reason: "must not be negative"}
	}
	if c.SyncTimeout == 0 {
		c.SyncTimeout = connector.Duration(10 * time.Second)
	}
	if b := c.Batch; b != nil {
		switch {
		case b.Format != BatchNDJSON && b.Format != BatchJSONArray:
			return nil, &connector.SpecError{Field: "batch.format", Reason: fmt.Sprintf("%q is not a batch format; want %s or %s", b.Format, BatchNDJSON, BatchJSONArray)}
		case b.MaxMessages < 0 || b.MaxMessages > maxBatchMessages:
			return nil, &connector.SpecError{Field: "batch.max_messages", Reason: fmt.Sprintf("must be between 1 and %d", maxBatchMessages)}
		case c.Sync:
			return nil, &connector.SpecError{Field: "batch", Reason: "cannot be combined with sync: a sync answer is one message's outcome"}
		}
		if b.MaxMessages == 0 {
			b.MaxMessages = maxBatchMessages
		}
	}
	w := &webhook{cfg: c, env: env}
	if c.SecretEnv != "" {
		s := os.Getenv(c.SecretEnv)
		if s == "" {
			return nil, &connector.SpecError{Field: "secret_env", Reason: c.SecretEnv + " is not set in vrsky's environment"}
		}
		w.secret = []byte(s)
	}
	return w, nil
}

// Bind claims the hook's path for emit (connector.Binder), so the path
// serves from the moment the integration counts as running.
func (w *webhook) Bind(emit connector.Emitter) (release func(), err error) {
	if w.env.Hooks == nil {
		return nil, fmt.Errorf("http-webhook: no hook router in this process")
	}
	release, err = w.env.Hooks.Register(w.env.Tenant, w.cfg.Path, func(rctx context.Context, req *connector.HookRequest) (*connector.HookResponse, error) {
		return w.serve(rctx, emit, req)
	})
	w.bound = err == nil
	return release, err
}

// Run serves the hook until ctx ends, binding its path first when the
// caller did not.
func (w *webhook) Run(ctx context.Context, emit connector.Emitter) error {
	if !w.bound {
		release, err := w.Bind(emit)
		if err != nil {
			return err
		}
		defer release()
	}
	<-ctx.Done()
	return nil
}

func (w *webhook) serve(ctx context.Context, emit connector.Emitter, req *connector.HookRequest) (*connector.HookResponse, error) {
	if req.Method != http.MethodPost && req.Method != http.MethodPut {
		return errorResponse(http.StatusMethodNotAllowed, "method_not_allowed", "method", "webhooks accept POST or PUT"), nil
	}
	body := req.BodyStream // a large body arrives as a stream, read once into the object store
	size := int64(len(req.Body))
	if body != nil {
		size = req.ContentLength
	}
	if w.cfg.MaxBodyBytes > 0 && size > w.cfg.MaxBodyBytes {
		return tooLarge(size, w.cfg.MaxBodyBytes), nil
	}
	ct := req.Header.Get("Content-Type")
	if len(w.cfg.ContentTypes) > 0 {
		mt, _, _ := mime.ParseMediaType(ct)
		if !slices.Contains(w.cfg.ContentTypes, mt) {
			return errorResponse(http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type",
				fmt.Sprintf("content type %q is not accepted; accepted: %s", mt, strings.Join(w.cfg.ContentTypes, ", "))), nil
		}
	}
	if w.secret != nil {
		want, ok := parseSignature(req.Header.Get("X-Hub-Signature-256"))
		switch {
		case !ok:
			return badSignature(), nil
		case body != nil:
			// Checked as the body streams by: a mismatch at its end fails
			// the emit, and nothing is stored.
			body = &signedBody{r: body, mac: hmac.New(sha256.New, w.secret), want: want}
		case !hmac.Equal(want, bodyMAC(w.secret, req.Body)):
			return badSignature(), nil
		}
	}
	if body != nil && w.cfg.MaxBodyBytes > 0 {
		body = connector.LimitBody(body, w.cfg.MaxBodyBytes) // a chunked body has no length to check up front
	}
	h := connector.Header{}
	if ct != "" {
		h.Set("Content-Type", ct)
	}
	// The caller's trace context: the pipeline checks it, and starts a
	// new trace in place of one that is missing or malformed.
	if tp := req.Header.Get(connector.HeaderTraceparent); tp != "" {
		h.Set(connector.HeaderTraceparent, tp)
		if ts := req.Header.Get(connector.HeaderTracestate); ts != "" {
			h.Set(connector.HeaderTracestate, ts)
		}
	}
	if w.cfg.Batch != nil {
		return w.serveBatch(ctx, emit, req, body, h)
	}
	msg := &connector.Message{ID: idempotencyKey(req.Header.Get("Idempotency-Key")), Header: h, Data: req.Body}
	if body != nil {
		msg.Data, msg.Stream = nil, body
	}
	if w.cfg.Sync {
		return w.serveSync(ctx, emit, msg)
	}
	if err := emit.Emit(ctx, msg); err != nil {
		return emitFailed(err, w.cfg.MaxBodyBytes)
	}
	return accepted(msg.ID), nil
}

// accepted is the 202 of a durable message, {"id":"<id>"}, built without
// a map or reflection: it answers every asynchronous webhook request.
func accepted(id string) *connector.HookResponse {
	body := append(jsonenc.AppendString(append(make([]byte, 0, len(id)+10), `{"id":`...), id), '}')
	v := []string{"application/json", id}
	rh := connector.Header{"Content-Type": v[0:1:1], connector.HeaderMsgID: v[1:2:2]}
	return &connector.HookResponse{Status: http.StatusAccepted, Header: rh, Body: body}
}

// serveSync emits msg and waits, up to sync_timeout, for the steps to
// take it: 200 {"id","status":"passed"|"filtered"} when they did, 422
// with the failing step's error when one failed (the message stays
// durable and is retried or dead-lettered by the integration's policy),
// 202 {"id","status":"pending"} when the wait ended first.
func (w *webhook) serveSync(ctx context.Context, emit connector.Emitter, msg *connector.Message) (*connector.HookResponse, error) {
	wctx, cancel := context.WithTimeout(ctx, time.Duration(w.cfg.SyncTimeout))
	defer cancel()
	out, err := emit.EmitWait(wctx, msg)
	if err != nil {
		return emitFailed(err, w.cfg.MaxBodyBytes)
	}
	switch out.Status {
	case connector.StatusPassed, connector.StatusFiltered:
		return answer(http.StatusOK, msg.ID, map[string]string{"id": msg.ID, "status": out.Status}), nil
	case connector.StatusFailed:
		return answer(http.StatusUnprocessableEntity, msg.ID, map[string]string{
			"id": msg.ID, "status": out.Status, "stage": out.Stage, "error": out.Error,
			"message": "a step failed; the message is kept and will be retried or dead-lettered according to the integration's retry policy",
		}), nil
	default:
		return answer(http.StatusAccepted, msg.ID, map[string]string{"id": msg.ID, "status": connector.OutcomePending}), nil
	}
}

// emitFailed answers an emit that failed: the client's fault (a streamed
// body that did not match its signature, grew past the limit or broke off),
// a tenant quota (429 quota_exceeded naming it, or 507 for a full storage
// quota) or back-pressure gets its own answer; anything else is the
// server's (503 from the API).
func emitFailed(err error, maxBody int64) (*connector.HookResponse, error) {
	var qe *connector.QuotaError
	switch {
	case errors.As(err, &qe):
		status := http.StatusTooManyRequests
		if qe.Quota == connector.QuotaStorageBytes && !errors.Is(qe, connector.ErrBackpressure) {
			status = http.StatusInsufficientStorage // JetStream refused: the account is full
		}
		r := errorResponse(status, "quota_exceeded", qe.Quota, qe.Reason)
		// Rounded up: a client that waits less would be refused again.
		r.Header.Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(qe.RetryAfter.Seconds())))))
		return r, nil
	case errors.Is(err, connector.ErrBackpressure):
		r := errorResponse(http.StatusTooManyRequests, "backpressure", "",
			"the integration's queue is at its storage limit; retry later")
		r.Header.Set("Retry-After", "1")
		return r, nil
	case errors.Is(err, errBadSignature):
		return badSignature(), nil
	case errors.Is(err, connector.ErrBodyTooLarge):
		return tooLarge(-1, maxBody), nil
	case errors.Is(err, connector.ErrPayloadRead):
		return errorResponse(http.StatusBadRequest, "bad_body", "body", fmt.Sprintf("the body could not be read: %v", errors.Unwrap(err))), nil
	}
	return nil, err
}

func tooLarge(size, limit int64) *connector.HookResponse {
	msg := "the body is over this hook's limit"
	switch {
	case size >= 0 && limit > 0:
		msg = fmt.Sprintf("the body has %d bytes; this hook accepts at most %d", size, limit)
	case limit > 0:
		msg = fmt.Sprintf("the body is over this hook's limit of %d bytes", limit)
	}
	return errorResponse(http.StatusRequestEntityTooLarge, "body_too_large", "body", msg)
}

func badSignature() *connector.HookResponse {
	return errorResponse(http.StatusUnauthorized, "bad_signature", "X-Hub-Signature-256",
		"missing or wrong HMAC-SHA256 signature of the body")
}

var errBadSignature = errors.New("the body does not match its X-Hub-Signature-256")

// signedBody passes a streamed body through and checks its HMAC at the
// end: a mismatch turns EOF into errBadSignature.
type signedBody struct {
	r    io.Reader
	mac  hash.Hash
	want []byte
}

func (s *signedBody) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.mac.Write(p[:n])
	if err == io.EOF && !hmac.Equal(s.want, s.mac.Sum(nil)) {
		return n, errBadSignature
	}
	return n, err
}

func answer(status int, id string, v map[string]string) *connector.HookResponse {
	body, _ := json.Marshal(v)
	rh := connector.Header{}
	rh.Set("Content-Type", "application/json")
	rh.Set(connector.HeaderMsgID, id)
	return &connector.HookResponse{Status: status, Header: rh, Body: body}
}

// idempotencyKey makes a client's Idempotency-Key usable as a message id
// (a NATS header value, a KV key token, an object key segment): a key of
// [A-Za-z0-9._-] that neither starts nor ends with '.' nor holds "..", at
// most 128 bytes, is used as it is; any other is hashed. (Dots at the ends
// or doubled would make an empty KV token, and "." or ".." a path segment
// that object stores refuse, so a large body could never be stored.)
func idempotencyKey(k string) string {
	if k == "" {
		return ""
	}
	ok := len(k) <= 128 && k[0] != '.' && k[len(k)-1] != '.' && !strings.Contains(k, "..")
	for i := 0; ok && i < len(k); i++ {
		c := k[i]
		ok = c == '-' || c == '_' || c == '.' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
	}
	if ok {
		return k
	}
	sum := sha256.Sum256([]byte(k))
	return "k-" + hex.EncodeToString(sum[:16])
}

// parseSignature reads GitHub's "sha256=<hex>" form.
func parseSignature(header string) ([]byte, bool) {
	sig, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return nil, false
	}
	got, err := hex.DecodeString(sig)
	return got, err == nil && len(got) == sha256.Size
}

func bodyMAC(secret, body []byte) []byte {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return mac.Sum(nil)
}

func errorResponse(status int, code, field, message string) *connector.HookResponse {
	body, _ := json.Marshal(map[string]any{"error": map[string]string{"code": code, "message": message, "field": field}})
	h := connector.Header{}
	h.Set("Content-Type", "application/json")
	return &connector.HookResponse{Status: status, Header: h, Body: body}
}
