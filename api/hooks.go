package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/vrsky/vrsky/runtime"
)

// hookInline is the largest webhook body read into memory before the
// source sees it; larger bodies are streamed.
const hookInline = 64 << 10

// hook hands POST /hooks/{tenant}/{path} to the running webhook source of
// that tenant and path, and writes its answer back as it is.
func (s *Server) hook(c *fiber.Ctx) error {
	tenant, path := c.Params("tenant"), c.Params("+")
	r := c.Request()
	n := int64(r.Header.ContentLength()) // -1: chunked
	if n > int64(s.hookLimit) {
		c.Context().SetConnectionClose() // the body is not read: the connection cannot carry another request
		return bodyTooLarge(fmt.Sprintf("the request body is %d bytes, over the webhook limit of %d", n, s.hookLimit))
	}
	req := &runtime.HookRequest{Method: c.Method()}
	if r.IsBodyStream() && (n < 0 || n > hookInline) {
		// Large (or unknown): the source streams it into the object
		// store, so the server never holds it whole.
		req.BodyStream, req.ContentLength = runtime.LimitBody(r.BodyStream(), int64(s.hookLimit)), n
	} else {
		// Valid until the handler returns (fasthttp reuses it): sources
		// make the message durable before they answer, and copy what
		// they keep (runtime.HookRequest).
		req.Body = c.BodyRaw()
		req.ContentLength = int64(len(req.Body))
	}
	req.Header = hookHeader(&r.Header)
	ctx, cancel := context.WithTimeout(c.UserContext(), s.hookWait)
	defer cancel()
	resp, err := s.eng.Hooks().Serve(ctx, tenant, path, req)
	if req.BodyStream != nil && (err != nil || resp.Status >= 300) {
		// A refused stream may be unread (a 401 or 415 answers before the
		// body): close the connection rather than parse the rest of the
		// body as the next request.
		c.Context().SetConnectionClose()
	}
	if errors.Is(err, runtime.ErrNoHook) && s.eng.Moving(tenant) {
		// The tenant's pipelines are held while its NATS moves: come back.
		e := newError(http.StatusTooManyRequests, CodeBackpressure, "", "tenant %q is moving to another NATS placement; retry after Retry-After seconds", tenant)
		e.retryAfter = time.Second
		return e
	}
	if errors.Is(err, runtime.ErrNoHook) {
		return notFound("no running integration of tenant %q serves webhook path %q", tenant, path)
	}
	if err != nil {
		return &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable,
			Message: "the message could not be made durable; retry later", cause: fmt.Errorf("hook %s/%s: %w", tenant, path, err)}
	}
	for k, vs := range resp.Header {
		for i, v := range vs {
			if i == 0 {
				c.Set(k, v)
			} else {
				c.Append(k, v)
			}
		}
	}
	status := resp.Status
	if status == 0 {
		status = http.StatusOK
	}
	return c.Status(status).Send(resp.Body)
}

// hookHeader copies a request's headers for the source in three
// allocations whatever their number: the keys and values share one
// string, the single values one slice, and the map is sized once (a map
// entry, a key and a value each per header cost a quarter of the
// handler's allocations). fasthttp has already put the keys in canonical
// form; CanonicalMIMEHeaderKey returns such a key as it is.
func hookHeader(h *fasthttp.RequestHeader) runtime.Header {
	n, size := 0, 0
	h.VisitAll(func(k, v []byte) { n, size = n+1, size+len(k)+len(v) })
	buf := make([]byte, 0, size)
	h.VisitAll(func(k, v []byte) { buf = append(append(buf, k...), v...) })
	all := string(buf)
	vals := make([]string, 0, n)
	hdr := make(runtime.Header, n)
	off := 0
	h.VisitAll(func(k, v []byte) {
		key := textproto.CanonicalMIMEHeaderKey(all[off : off+len(k)])
		val := all[off+len(k) : off+len(k)+len(v)]
		off += len(k) + len(v)
		if have, ok := hdr[key]; ok { // a repeated header: its own slice
			hdr[key] = append(have[:len(have):len(have)], val)
			return
		}
		vals = append(vals, val)
		hdr[key] = vals[len(vals)-1 : len(vals) : len(vals)]
	})
	return hdr
}
