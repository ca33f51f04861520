package guest

import (
	"errors"

	"github.com/vrsky/vrsky/abi"
)

// HostError is a failed host call, carrying the ABI error code.
type HostError struct {
	// Code is one of the abi.Err* codes.
	Code int32
}

func (e *HostError) Error() string { return "vrsky: " + abi.ErrorName(e.Code) }

// Is makes errors.Is(err, guest.ErrNotFound) and friends work.
func (e *HostError) Is(target error) bool {
	t, ok := target.(*HostError)
	return ok && t.Code == e.Code
}

// Errors returned by host calls, for errors.Is.
var (
	ErrNotFound    = &HostError{Code: abi.ErrNotFound}
	ErrDenied      = &HostError{Code: abi.ErrDenied}
	ErrInvalid     = &HostError{Code: abi.ErrInvalid}
	ErrTooLarge    = &HostError{Code: abi.ErrTooLarge}
	ErrUnavailable = &HostError{Code: abi.ErrUnavailable}
	ErrTimeout     = &HostError{Code: abi.ErrTimeout}
	ErrBadHandle   = &HostError{Code: abi.ErrBadHandle}
)

func codeErr(code int32) error {
	if code >= 0 {
		return nil
	}
	return &HostError{Code: code}
}

type retryable struct{ err error }

func (r *retryable) Error() string { return r.err.Error() }
func (r *retryable) Unwrap() error { return r.err }

// Retryable marks err as transient: the message is retried later.
func Retryable(err error) error {
	if err == nil {
		return nil
	}
	return &retryable{err: err}
}

// Permanent marks err as permanent (the default for any error a handler
// returns): the message goes to the dead-letter queue without retries.
func Permanent(err error) error { return err }

// IsRetryable reports whether err was returned by a host call that may
// succeed later (unavailable, timeout) or was marked with Retryable.
func IsRetryable(err error) bool {
	var r *retryable
	return errors.As(err, &r) || errors.Is(err, ErrUnavailable) || errors.Is(err, ErrTimeout)
}
