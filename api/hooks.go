package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"time"

	"github.com/gofiber/fiber/v2"

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
	req := &runtime.HookRequest{Method: c.Method(), Header: runtime.Header{}}
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
	c.Request().Header.VisitAll(func(k, v []byte) {
		key := textproto.CanonicalMIMEHeaderKey(string(k))
		req.Header[key] = append(req.Header[key], string(v))
	})
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
