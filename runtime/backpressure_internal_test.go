package runtime

import (
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// A full stream is told from the server's typed answer, however wrapped;
// other store failures and look-alike texts are not back-pressure.
func TestIsStreamFull(t *testing.T) {
	storeFailed := func(desc string) error {
		return fmt.Errorf("nats: %w", &jetstream.APIError{Code: 503, ErrorCode: 10077, Description: desc})
	}
	for _, tc := range []struct {
		err  error
		full bool
	}{
		{storeFailed("maximum messages exceeded"), true},
		{storeFailed("maximum bytes exceeded"), true},
		{fmt.Errorf("publish: %w", storeFailed("maximum bytes exceeded")), true},
		{storeFailed("store closed"), false},
		{&jetstream.APIError{Code: 503, ErrorCode: 10047, Description: "insufficient resources"}, false},
		{errors.New("maximum messages exceeded"), false},
		{nil, false},
	} {
		if got := isStreamFull(tc.err); got != tc.full {
			t.Errorf("isStreamFull(%v) = %v, want %v", tc.err, got, tc.full)
		}
	}
}
