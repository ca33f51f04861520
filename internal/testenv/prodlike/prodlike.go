// Package prodlike points a test's VRSky at the production backends: a
// fresh database on the test binary's PostgreSQL cluster (pgtest) and a
// fresh bucket on its S3 server (s3test), for suites that run once on the
// embedded defaults and once in the production shape.
//
//	func TestMain(m *testing.M) { prodlike.Main(m) } // stops both servers at the end
//
//	func TestEndToEndProdLike(t *testing.T) {
//		b := prodlike.New(t)
//		cmd := exec.Command(vrsky, append([]string{"serve"}, b.Flags()...)...)
//		cmd.Env = append(os.Environ(), b.Env()...)
//		...
//	}
package prodlike

import (
	"fmt"
	"os"
	"testing"

	"github.com/vrsky/vrsky/internal/testenv/pgtest"
	"github.com/vrsky/vrsky/internal/testenv/s3test"
)

// Backends is one test's database and bucket.
type Backends struct {
	// DatabaseURL is a fresh, empty database (vrsky applies its migrations).
	DatabaseURL string
	// S3 is a fresh bucket on the S3 server, with the root credentials.
	S3 s3test.Config
}

// New creates a database and a bucket for t, on servers shared by the test
// binary and started on first use.
func New(t testing.TB) Backends {
	t.Helper()
	return Backends{DatabaseURL: pgtest.New(t), S3: s3test.New(t)}
}

// Flags are `vrsky serve` flags that select the backends. Credentials are
// not flags: they come from Env, as in production (the AWS chain).
func (b Backends) Flags() []string {
	return []string{
		"--database-url", b.DatabaseURL,
		"--s3-endpoint", b.S3.Endpoint,
		"--s3-bucket", b.S3.Bucket,
		"--s3-region", b.S3.Region,
		"--s3-path-style=true",
	}
}

// Env is the environment equivalent of Flags plus the S3 credentials, for
// a vrsky subprocess (append it to os.Environ()).
func (b Backends) Env() []string {
	return []string{
		"VRSKY_DATABASE_URL=" + b.DatabaseURL,
		"VRSKY_S3_ENDPOINT=" + b.S3.Endpoint,
		"VRSKY_S3_BUCKET=" + b.S3.Bucket,
		"VRSKY_S3_REGION=" + b.S3.Region,
		"VRSKY_S3_PATH_STYLE=true",
		"AWS_ACCESS_KEY_ID=" + b.S3.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + b.S3.SecretKey,
		"AWS_REGION=" + b.S3.Region,
		// Keep the AWS chain from looking further (profiles, instance metadata).
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// Main runs the tests, then stops the PostgreSQL cluster and the S3 server
// if they were started. Use it as the package's TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if code2 := Cleanup(); code2 != nil {
		fmt.Fprintln(os.Stderr, code2)
		code = max(code, 1)
	}
	os.Exit(code)
}

// Cleanup stops both shared servers; Main calls it.
func Cleanup() error {
	perr, serr := pgtest.Cleanup(), s3test.Cleanup()
	if perr != nil {
		return perr
	}
	return serr
}
