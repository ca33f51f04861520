package registry_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/vrsky/vrsky/internal/testenv/pgtest"
	"github.com/vrsky/vrsky/internal/testenv/s3test"
)

// TestMain stops the shared PostgreSQL cluster and S3 gateway the
// production-backend tests start.
func TestMain(m *testing.M) {
	code := m.Run()
	for _, cleanup := range []func() error{pgtest.Cleanup, s3test.Cleanup} {
		if err := cleanup(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = max(code, 1)
		}
	}
	os.Exit(code)
}
