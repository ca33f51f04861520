// Package s3test runs a real S3-compatible server for tests: Versity's S3
// gateway (versitygw, Apache-2.0) with its posix backend, one server per
// test binary, started on first use, and one bucket per test.
//
//	func TestMain(m *testing.M) { s3test.Main(m) } // stops the shared server at the end
//
//	func TestSomething(t *testing.T) {
//		cfg := s3test.New(t) // endpoint, a fresh bucket, root keys, region
//		...
//	}
//
// The gateway binary is built once with `go install` into the user's cache
// (~/.cache/vrsky/tools/versitygw-<version>/versitygw), outside any
// checkout, so fresh clones reuse it; scripts/test-deps.sh does the same
// build ahead of time. If it is missing, the harness builds it (about a
// minute) and fails, never skips, if that is impossible.
package s3test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vrsky/vrsky/internal/testenv/internal/proc"
	"github.com/vrsky/vrsky/internal/testenv/internal/stale"
)

// Version is the versitygw release the harness runs.
const Version = "v1.8.0"

// Module is the versitygw command's package, for go install.
const Module = "github.com/versity/versitygw/cmd/versitygw"

// Region is the region the gateway is started with.
const Region = "us-east-1"

// InstallHint tells a developer how to get the gateway binary.
var InstallHint = fmt.Sprintf("run `make test` (it calls scripts/test-deps.sh), or "+
	"`GOBIN=%s go install %s@%s`", filepath.Dir(BinaryPath()), Module, Version)

// Config is what a client needs to use one bucket on the server.
type Config struct {
	// Endpoint is the server's base URL, http://127.0.0.1:<port>.
	Endpoint string
	// Bucket is the test's own bucket.
	Bucket string
	// AccessKey and SecretKey are the gateway's root credentials.
	AccessKey string
	SecretKey string
	// Region is the signing region.
	Region string
}

// Server is one versitygw process serving a temp dir.
type Server struct {
	bin       string
	dir       string // owns everything below; removed by Close unless keep
	keep      bool
	dataDir   string
	port      int
	accessKey string
	secretKey string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done <-chan struct{}
	log  *os.File

	seq atomic.Int64
}

// BinaryPath is where the harness expects the gateway: $VRSKY_VERSITYGW if
// set, else <user cache dir>/vrsky/tools/versitygw-<Version>/versitygw.
func BinaryPath() string {
	if p := os.Getenv("VRSKY_VERSITYGW"); p != "" {
		return p
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = filepath.Join(os.TempDir(), "vrsky-cache")
	}
	return filepath.Join(cache, "vrsky", "tools", "versitygw-"+Version, "versitygw")
}

var buildMu sync.Mutex

// Binary returns the gateway binary, building it with go install first if
// it is missing.
func Binary() (string, error) {
	buildMu.Lock()
	defer buildMu.Unlock()
	p := BinaryPath()
	if st, err := os.Stat(p); err == nil && !st.IsDir() {
		return p, nil
	}
	if os.Getenv("VRSKY_VERSITYGW") != "" {
		return "", fmt.Errorf("VRSKY_VERSITYGW=%s does not exist", p)
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("versitygw not found at %s and no go command to build it: %s", p, InstallHint)
	}
	slog.Info("s3test: building versitygw (once, about a minute)", "version", Version, "into", filepath.Dir(p))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, gobin, "install", Module+"@"+Version)
	cmd.Dir = os.TempDir() // outside any module: go.mod of the checkout stays untouched
	cmd.Env = append(os.Environ(), "GOBIN="+filepath.Dir(p), "GOFLAGS=-mod=mod", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building versitygw failed (%v): %s\n%s", err, InstallHint, out)
	}
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("go install did not produce %s: %s", p, InstallHint)
	}
	return p, nil
}

// Start starts a private server for t, closed by t.Cleanup. Most tests want
// New instead, which shares one server per test binary.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := StartServer()
	if err != nil {
		t.Fatalf("s3test: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("s3test: %v", err)
		}
	})
	return s
}

// StartServer starts a server in a new temp dir on a free port, with random
// root keys; the caller must Close it.
func StartServer() (*Server, error) { return StartServerWith(ServerOptions{}) }

// ServerOptions place a server for StartServerWith.
type ServerOptions struct {
	// Dir keeps the buckets across runs (Dir/data, Dir/meta); Close leaves
	// it in place. Empty means a new temp dir that Close removes.
	Dir string
	// Port is the TCP port on 127.0.0.1; 0 picks a free one.
	Port int
	// AccessKey and SecretKey are the root credentials; empty means random.
	AccessKey, SecretKey string
}

// StartServerWith starts a server; the caller must Close it.
func StartServerWith(o ServerOptions) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin, accessKey: o.AccessKey, secretKey: o.SecretKey, keep: o.Dir != ""}
	if s.accessKey == "" {
		s.accessKey = "vrskyroot" + randHex(4)
	}
	if s.secretKey == "" {
		s.secretKey = randHex(20)
	}
	if s.keep {
		s.dir, err = filepath.Abs(o.Dir)
		if err == nil {
			err = os.MkdirAll(s.dir, 0o700)
		}
	} else {
		stale.Sweep("vrsky-s3-*")
		s.dir, err = os.MkdirTemp("", "vrsky-s3-")
		if err == nil {
			err = stale.Mark(s.dir)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("server dir: %w", err)
	}
	fail := func(err error) (*Server, error) {
		if !s.keep {
			_ = os.RemoveAll(s.dir)
		}
		return nil, err
	}
	s.dataDir = filepath.Join(s.dir, "data")
	for _, d := range []string{s.dataDir, filepath.Join(s.dir, "meta")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fail(fmt.Errorf("mkdir: %w", err))
		}
	}
	if o.Port != 0 {
		s.port = o.Port
		if err := s.Start(); err != nil {
			return fail(err)
		}
		return s, nil
	}
	for attempt := 0; ; attempt++ {
		s.port, err = freePort()
		if err == nil {
			err = s.Start()
		}
		if err == nil {
			return s, nil
		}
		if attempt == 2 {
			return fail(err)
		}
	}
}

// Start starts the server (again, after Stop) on the same port and data and
// waits until it answers S3 requests.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("s3test: server already running")
	}
	logf, err := os.OpenFile(filepath.Join(s.dir, "versitygw.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("s3test: log file: %w", err)
	}
	cmd := exec.Command(s.bin,
		"--port", s.addr(),
		"--region", Region,
		"--quiet",
		"posix",
		// Metadata in a sidecar dir: works on file systems without user xattrs.
		"--sidecar", filepath.Join(s.dir, "meta"),
		s.dataDir,
	)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+s.accessKey, "ROOT_SECRET_KEY="+s.secretKey)
	cmd.Stdout, cmd.Stderr = logf, logf
	// The gateway dies with the test binary even without cleanup.
	done, err := proc.Start(cmd, syscall.SIGKILL)
	if err != nil {
		logf.Close()
		return fmt.Errorf("s3test: start versitygw: %w", err)
	}
	s.cmd, s.done, s.log = cmd, done, logf

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	client := s.Client()
	for {
		_, err := client.ListBuckets(ctx, &s3.ListBucketsInput{})
		if err == nil {
			return nil
		}
		select {
		case <-done:
			s.cmd, s.done = nil, nil
			logf.Close()
			return fmt.Errorf("s3test: versitygw exited at start: %s\n%s", cmd.ProcessState, s.logTail())
		case <-ctx.Done():
			s.stopLocked()
			return fmt.Errorf("s3test: versitygw not ready after 60s: %v\n%s", err, s.logTail())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop stops the server; its data stays for a later Start.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked()
}

func (s *Server) stopLocked() error {
	if s.cmd == nil {
		return nil
	}
	defer func() {
		s.cmd, s.done = nil, nil
		s.log.Close()
	}()
	for _, step := range []struct {
		sig  os.Signal
		wait time.Duration
	}{{syscall.SIGTERM, 10 * time.Second}, {syscall.SIGKILL, 10 * time.Second}} {
		_ = s.cmd.Process.Signal(step.sig)
		select {
		case <-s.done:
			return nil
		case <-time.After(step.wait):
		}
	}
	return fmt.Errorf("s3test: versitygw (pid %d) did not stop", s.cmd.Process.Pid)
}

// Close stops the server and removes its files (unless they were placed
// with ServerOptions.Dir).
func (s *Server) Close() error {
	err := s.Stop()
	if s.keep {
		return err
	}
	if rerr := os.RemoveAll(s.dir); rerr != nil && err == nil {
		err = rerr
	}
	return err
}

func (s *Server) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Endpoint is the server's base URL.
func (s *Server) Endpoint() string { return "http://" + s.addr() }

// DataDir is the posix backend's root: one directory per bucket.
func (s *Server) DataDir() string { return s.dataDir }

// Config returns the client settings for bucket, which need not exist.
func (s *Server) Config(bucket string) Config {
	return Config{Endpoint: s.Endpoint(), Bucket: bucket, AccessKey: s.accessKey, SecretKey: s.secretKey, Region: Region}
}

// Client is an S3 client with the root credentials and path-style addressing.
func (s *Server) Client() *s3.Client {
	return s3.New(s3.Options{
		BaseEndpoint: aws.String(s.Endpoint()),
		Region:       Region,
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.accessKey, s.secretKey, ""),
	})
}

// NewBucketName returns a bucket name no other test of this binary uses.
func (s *Server) NewBucketName() string {
	return fmt.Sprintf("t%d-%d-%s", os.Getpid(), s.seq.Add(1), randHex(3))
}

// NewBucket creates a fresh bucket for t and returns its Config. The bucket
// goes away with the server's temp dir.
func (s *Server) NewBucket(t testing.TB) Config {
	t.Helper()
	cfg := s.Config(s.NewBucketName())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(cfg.Bucket)}); err != nil {
		t.Fatalf("s3test: create bucket %s: %v", cfg.Bucket, err)
	}
	return cfg
}

func (s *Server) logTail() string {
	b, err := os.ReadFile(filepath.Join(s.dir, "versitygw.log"))
	if err != nil {
		return ""
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// ---- the shared server ----

var shared struct {
	once sync.Once
	s    *Server
	err  error
}

// Shared returns the test binary's server, starting it on first use.
func Shared() (*Server, error) {
	shared.once.Do(func() { shared.s, shared.err = StartServer() })
	return shared.s, shared.err
}

// New creates a fresh bucket on the shared server and returns its Config.
func New(t testing.TB) Config {
	t.Helper()
	s, err := Shared()
	if err != nil {
		t.Fatalf("s3test: %v", err)
	}
	return s.NewBucket(t)
}

// Main runs the tests and then stops the shared server, if one was started.
//
//	func TestMain(m *testing.M) { s3test.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	if err := Cleanup(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// Cleanup stops and removes the shared server, if one was started.
func Cleanup() error {
	if shared.s == nil {
		return nil
	}
	return shared.s.Close()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("s3test: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
