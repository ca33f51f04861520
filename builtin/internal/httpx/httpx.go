// Package httpx holds what VRSky's HTTP-speaking sinks share: a tuned
// keep-alive transport, a concurrency limit, and the mapping of a
// response to success, a retryable error or a permanent one.
package httpx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/vrsky/vrsky/platform/egress"
	"github.com/vrsky/vrsky/runtime/connector"
)

// NewClient returns a client whose transport keeps up to conns idle
// connections to each host, so conns concurrent requests reuse them
// instead of dialling; timeout bounds each request (0: the caller's
// context does), and policy the addresses it may connect to (through a
// proxy from the environment, that is the proxy's). Responses are not
// asked for gzip: sinks read no more than an error's first bytes.
func NewClient(timeout time.Duration, conns int, policy egress.Policy) *http.Client {
	if conns <= 0 {
		conns = 64
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second, Control: policy.Control}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          max(conns, 100),
		MaxIdleConnsPerHost:   conns,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
	}
	return &http.Client{Transport: tr, Timeout: timeout}
}

// DoError is the error of a request that got no response: permanent when
// the egress policy refused the address (retrying cannot help), else
// retryable. what names the request (with its URL redacted); net/http's
// own *url.Error is dropped for its cause, since it prints the whole URL,
// query string and credentials included, into logs and dead letters.
func DoError(what string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	err = fmt.Errorf("%s: %w", what, err)
	if errors.Is(err, egress.ErrDenied) {
		return connector.Permanent(err)
	}
	return err
}

// Limit bounds how many requests are in flight; nil means no bound.
type Limit chan struct{}

// NewLimit returns a Limit of n, or nil when n <= 0.
func NewLimit(n int) Limit {
	if n <= 0 {
		return nil
	}
	return make(Limit, n)
}

// Acquire takes a slot, waiting until one is free or ctx ends.
func (l Limit) Acquire(ctx context.Context) error {
	if l == nil {
		return nil
	}
	select {
	case l <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Release gives back a slot taken by Acquire.
func (l Limit) Release() {
	if l != nil {
		<-l
	}
}

// StatusError is a response that was not a success.
type StatusError struct {
	// What names the request, e.g. "POST https://example.com/orders".
	What string
	// Code is the HTTP status code, Status its text ("503 Service Unavailable").
	Code   int
	Status string
	// Body is the response body as an error quotes it: one short line
	// (see Summary), "" when it was empty.
	Body string
	// RetryAfter is the server's Retry-After, 0 when it sent none.
	RetryAfter time.Duration
}

func (e *StatusError) Error() string {
	s := e.What + ": " + e.Status
	if e.Body != "" {
		s += ": " + e.Body
	}
	if e.RetryAfter > 0 {
		s += fmt.Sprintf(" (retry after %s)", e.RetryAfter)
	}
	return s
}

// Retryable reports whether the same request may succeed later: 408, 429
// and 5xx.
func Retryable(code int) bool {
	return code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500
}

// Check consumes resp's body (up to 1 MiB, so the connection is reused)
// and maps its status: nil for 2xx; a *StatusError for the rest, its Body
// a one-line Summary of the response's, wrapped with connector.Permanent
// unless Retryable.
func Check(what string, resp *http.Response) error {
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainLen))
		return nil
	}
	head, _ := io.ReadAll(io.LimitReader(resp.Body, peekLen))
	size, more := int64(len(head)), false
	if len(head) == peekLen {
		n, _ := io.Copy(io.Discard, io.LimitReader(resp.Body, drainLen+1))
		size += n
		if n > drainLen { // the rest is left unread: the connection closes
			size, more = size-1, true
			if resp.ContentLength > size {
				size, more = resp.ContentLength, false
			}
		}
	}
	err := &StatusError{What: what, Code: resp.StatusCode, Status: resp.Status,
		Body: Summary(resp.Header.Get("Content-Type"), head, size, more), RetryAfter: RetryAfter(resp.Header, time.Now())}
	if Retryable(resp.StatusCode) {
		return err
	}
	return connector.Permanent(err)
}

// RetryAfter parses a Retry-After header, in seconds or as an HTTP date;
// 0 when absent or unreadable.
func RetryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n < 0 {
			return 0
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// Redact returns u without its query, fragment and password, for error
// texts and logs: a query often carries a key.
func Redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparsable URL)"
	}
	p.RawQuery, p.Fragment = "", ""
	return p.Redacted()
}

// ValidHeaderValue reports whether v may be sent as a header value: no
// control characters other than tab.
func ValidHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// ValidHeaderName reports whether name is an HTTP token (RFC 9110).
func ValidHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
		if !ok {
			return false
		}
	}
	return true
}
