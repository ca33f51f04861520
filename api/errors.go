package api

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/vrsky/vrsky/platform/store"
	"github.com/vrsky/vrsky/runtime"
)

// Code identifies the kind of an API error. Clients branch on the code, not
// on the message.
type Code string

// The error code catalogue. Every error the API returns carries one of these.
const (
	CodeBadRequest          Code = "bad_request"
	CodeInvalidSpec         Code = "invalid_spec"
	CodeInvalidParameters   Code = "invalid_parameters"
	CodeUnauthorized        Code = "unauthorized"
	CodeForbidden           Code = "forbidden"
	CodeNotFound            Code = "not_found"
	CodeMethodNotAllowed    Code = "method_not_allowed"
	CodeAlreadyExists       Code = "already_exists"
	CodeConflict            Code = "conflict"
	CodeBodyTooLarge        Code = "body_too_large"
	CodeUnsupportedMedia    Code = "unsupported_media_type"
	CodeUnprocessable       Code = "unprocessable"
	CodeQuotaExceeded       Code = "quota_exceeded"
	CodeBackpressure        Code = "backpressure"
	CodeTooManyAuthFailures Code = "too_many_auth_failures"
	CodeInternal            Code = "internal"
	CodeUnavailable         Code = "unavailable"
	CodeNotReady            Code = "not_ready"
	// The http-webhook source answers these two itself (builtin/http).
	CodeBadSignature Code = "bad_signature"
	CodeBadBody      Code = "bad_body"
)

// Codes is the catalogue as data: each code, the HTTP status it goes with,
// and what it means. The OpenAPI document's error code enum must list the
// same codes (a test checks it).
var Codes = []struct {
	Code   Code
	Status int
	Doc    string
}{
	{CodeBadRequest, http.StatusBadRequest, "the request is malformed; field names what to fix"},
	{CodeInvalidSpec, http.StatusBadRequest, "the integration spec is invalid; field names what to fix"},
	{CodeInvalidParameters, http.StatusBadRequest, "a template parameter is missing or invalid; field names it (parameters.NAME)"},
	{CodeUnauthorized, http.StatusUnauthorized, "the API key is missing, malformed, unknown or revoked"},
	{CodeForbidden, http.StatusForbidden, "the route needs the admin key"},
	{CodeNotFound, http.StatusNotFound, "no such route, or no such thing in the caller's tenant"},
	{CodeMethodNotAllowed, http.StatusMethodNotAllowed, "the route exists, with other methods"},
	{CodeAlreadyExists, http.StatusConflict, "a thing with that name exists already"},
	{CodeConflict, http.StatusConflict, "the change conflicts with the current state (a concurrent update, a webhook path in use, a dead letter whose sink is gone)"},
	{CodeBodyTooLarge, http.StatusRequestEntityTooLarge, "the request body is over the limit"},
	{CodeUnsupportedMedia, http.StatusUnsupportedMediaType, "the Content-Type is not one the route accepts"},
	{CodeUnprocessable, http.StatusUnprocessableEntity, "the request is well-formed, but the server could not act on it within its bounds (a Wasm module that does not compile within the compile time or memory bound)"},
	{CodeQuotaExceeded, http.StatusTooManyRequests, "a tenant quota is reached; the message names it"},
	{CodeBackpressure, http.StatusTooManyRequests, "the integration or the tenant cannot take the message now (its queue is near its limit, or its NATS is moving to another placement); retry after Retry-After seconds"},
	{CodeTooManyAuthFailures, http.StatusTooManyRequests, "too many failed authentications from the client's address or for the key id; every key is refused until Retry-After seconds have passed"},
	{CodeInternal, http.StatusInternalServerError, "a server-side failure"},
	{CodeUnavailable, http.StatusServiceUnavailable, "a backend (store, NATS) is unavailable; retry after Retry-After seconds"},
	{CodeNotReady, http.StatusServiceUnavailable, "the node is not ready; the checks say which backend fails"},
	{CodeBadSignature, http.StatusUnauthorized, "a webhook's X-Hub-Signature-256 is missing or does not match the body (sources with secret_env)"},
	{CodeBadBody, http.StatusBadRequest, "a webhook's body could not be read (the client went away, or sent a broken chunked body)"},
}

// retryAfter is the Retry-After value, in seconds, sent with 503s.
const retryAfter = 5

// Error is the one error type handlers return. The error handler renders
// it as {"error": {"code", "message", "field"}} with Status.
type Error struct {
	// Status is the HTTP status code.
	Status int
	// Code is from the catalogue above.
	Code Code
	// Message says what went wrong, for humans.
	Message string
	// Field names the offending input ("name", "sinks[0].config.url",
	// "body"), or is empty.
	Field string

	cause      error
	retryAfter time.Duration // sent as Retry-After, rounded up to seconds, when > 0
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s (%s): %s", e.Code, e.Field, e.Message)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Unwrap returns the underlying cause, if any.
func (e *Error) Unwrap() error { return e.cause }

func newError(status int, code Code, field, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

func badRequest(field, format string, args ...any) *Error {
	return newError(http.StatusBadRequest, CodeBadRequest, field, format, args...)
}

func notFound(format string, args ...any) *Error {
	return newError(http.StatusNotFound, CodeNotFound, "", format, args...)
}

// storeError turns a store error into an API error; what names the thing
// ("integration \"orders\"") for the message.
func storeError(err error, what string) error {
	var e *Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &e):
		return err
	case errors.Is(err, store.ErrNotFound):
		e = notFound("%s not found", what)
	case errors.Is(err, store.ErrExists):
		e = newError(http.StatusConflict, CodeAlreadyExists, "name", "%s already exists", what)
	case errors.Is(err, store.ErrConflict):
		e = newError(http.StatusConflict, CodeConflict, "", "%s was changed concurrently; retry", what)
	case errors.Is(err, store.ErrUnavailable):
		e = newError(http.StatusServiceUnavailable, CodeUnavailable, "", "the store is unavailable; retry later")
	default:
		return fmt.Errorf("%s: %w", what, err)
	}
	e.cause = err
	return e
}

// errorBody is the JSON shape of every error response.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// toError classifies any error a handler or fiber returns.
func toError(err error) *Error {
	var (
		e  *Error
		fe *fiber.Error
		se *runtime.SpecError
	)
	switch {
	case errors.As(err, &e):
		return e
	case errors.As(err, &se):
		return &Error{Status: http.StatusBadRequest, Code: CodeInvalidSpec, Field: se.Field, Message: se.Reason, cause: err}
	case errors.As(err, &fe):
		switch fe.Code {
		case http.StatusNotFound:
			return &Error{Status: fe.Code, Code: CodeNotFound, Message: fe.Message, cause: err}
		case http.StatusMethodNotAllowed:
			return &Error{Status: fe.Code, Code: CodeMethodNotAllowed, Message: "method not allowed on this route", cause: err}
		case http.StatusRequestEntityTooLarge:
			return &Error{Status: fe.Code, Code: CodeBodyTooLarge, Field: "body", Message: "the request body is over the limit", cause: err}
		case http.StatusUnsupportedMediaType:
			return &Error{Status: fe.Code, Code: CodeUnsupportedMedia, Field: "Content-Type", Message: fe.Message, cause: err}
		}
		if fe.Code >= 400 && fe.Code < 500 {
			return &Error{Status: fe.Code, Code: CodeBadRequest, Message: fe.Message, cause: err}
		}
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrExists),
		errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrUnavailable):
		var out *Error
		_ = errors.As(storeError(err, "resource"), &out)
		return out
	}
	return &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal server error", cause: err}
}

// handleError is the app's one error handler.
func (s *Server) handleError(c *fiber.Ctx, err error) error {
	e := toError(err)
	if e.Status >= 500 {
		s.log.Error("request failed", "method", c.Method(), "path", c.Path(), "status", e.Status, "err", err)
	}
	if e.Status == http.StatusServiceUnavailable {
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(retryAfter))
	}
	if e.retryAfter > 0 {
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(retrySeconds(e.retryAfter)))
	}
	if e.Status == http.StatusUnauthorized {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="vrsky"`)
	}
	return c.Status(e.Status).JSON(errorBody{Error: errorDetail{Code: e.Code, Message: e.Message, Field: e.Field}})
}
