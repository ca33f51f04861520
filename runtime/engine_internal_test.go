package runtime

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// A start failure made again the same way is the same failure (logged
// once); another cause, or another wrapping, is a new one.
func TestSameFailure(t *testing.T) {
	bind := func(path string) error {
		return fmt.Errorf("source: %w", fmt.Errorf("webhook path %q is already served by another integration of tenant %s", path, "acme"))
	}
	spec := func(field string) error { return &SpecError{Field: field, Reason: "unknown connector"} }
	for _, tc := range []struct {
		name      string
		prev, err error
		same      bool
	}{
		{"no earlier failure", nil, bind("a"), false},
		{"the same failure again", bind("a"), bind("a"), true},
		{"the same spec error again", spec("sinks[0]"), spec("sinks[0]"), true},
		{"a timeout again", fmt.Errorf("stream: %w", context.DeadlineExceeded), fmt.Errorf("stream: %w", context.DeadlineExceeded), true},
		{"another path", bind("a"), bind("b"), false},
		{"another field", spec("sinks[0]"), spec("sinks[1]"), false},
		{"another cause", fmt.Errorf("stream: %w", context.DeadlineExceeded), fmt.Errorf("stream: %w", context.Canceled), false},
		{"another wrapping", errors.New("x"), fmt.Errorf("%w", errors.New("x")), false},
	} {
		if got := sameFailure(tc.prev, tc.err); got != tc.same {
			t.Errorf("%s: sameFailure = %v, want %v", tc.name, got, tc.same)
		}
	}
}
