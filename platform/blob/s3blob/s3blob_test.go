package s3blob_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"go.uber.org/goleak"

	"github.com/vrsky/vrsky/internal/testenv/s3test"
	"github.com/vrsky/vrsky/platform/blob"
	"github.com/vrsky/vrsky/platform/blob/blobtest"
	"github.com/vrsky/vrsky/platform/blob/s3blob"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if err := s3test.Cleanup(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = max(code, 1)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutine leak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func config(c s3test.Config) s3blob.Config {
	return s3blob.Config{Endpoint: c.Endpoint, Bucket: c.Bucket, Region: c.Region, UsePathStyle: true,
		AccessKeyID: c.AccessKey, SecretAccessKey: c.SecretKey, PartSize: s3blob.MinPartSize}
}

func open(t *testing.T, cfg s3blob.Config) *s3blob.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := s3blob.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestContract(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blob.Store { return open(t, config(s3test.New(t))) })
}

func TestContractWithPrefix(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blob.Store {
		cfg := config(s3test.New(t))
		cfg.Prefix = "vrsky/objects/"
		return open(t, cfg)
	})
}

// TestCreatesBucket opens a bucket that does not exist yet.
func TestCreatesBucket(t *testing.T) {
	srv, err := s3test.Shared()
	if err != nil {
		t.Fatal(err)
	}
	cfg := config(srv.Config(srv.NewBucketName()))
	s := open(t, cfg)
	ctx := context.Background()
	if _, err := s.Put(ctx, "k", bytes.NewReader([]byte("v"))); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if _, err := srv.Client().HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &cfg.Bucket}); err != nil {
		t.Fatalf("bucket not created: %v", err)
	}
	open(t, cfg) // and opening it again is fine
}

// TestStoresDigestMetadata checks the object as another S3 client sees it,
// for a single-request and a multipart object.
func TestStoresDigestMetadata(t *testing.T) {
	cfg := config(s3test.New(t))
	s := open(t, cfg)
	srv, _ := s3test.Shared()
	ctx := context.Background()
	for _, size := range []int{10, s3blob.MinPartSize*2 + 7} {
		data := bytes.Repeat([]byte("x"), size)
		info, err := s.Put(ctx, "k", bytes.NewReader(data))
		if err != nil {
			t.Fatalf("Put %d: %v", size, err)
		}
		head, err := srv.Client().HeadObject(ctx, &s3.HeadObjectInput{Bucket: &cfg.Bucket, Key: aws.String("k")})
		if err != nil {
			t.Fatalf("HeadObject: %v", err)
		}
		if got := head.Metadata["sha256"]; got != info.SHA256 {
			t.Errorf("size %d: x-amz-meta-sha256 = %q, want %q", size, got, info.SHA256)
		}
	}
}

// TestDetectsCorruption changes the object behind the store's back: the
// read fails at the end instead of returning wrong bytes silently.
func TestDetectsCorruption(t *testing.T) {
	cfg := config(s3test.New(t))
	s := open(t, cfg)
	srv, _ := s3test.Shared()
	ctx := context.Background()
	if _, err := s.Put(ctx, "k", bytes.NewReader([]byte("original"))); err != nil {
		t.Fatalf("Put: %v", err)
	}
	// Same size, other bytes, the old digest kept as metadata.
	info, _ := s.Stat(ctx, "k")
	if _, err := srv.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: &cfg.Bucket, Key: aws.String("k"),
		Body: strings.NewReader("tampered"), Metadata: map[string]string{"sha256": info.SHA256}}); err != nil {
		t.Fatalf("tamper: %v", err)
	}
	rc, _, err := s.Get(ctx, "k")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	defer rc.Close()
	buf := new(bytes.Buffer)
	if _, err := buf.ReadFrom(rc); !errors.Is(err, s3blob.ErrDigestMismatch) {
		t.Errorf("reading a tampered object: %v, want ErrDigestMismatch", err)
	}
}

func TestOpenErrors(t *testing.T) {
	srv, err := s3test.Shared()
	if err != nil {
		t.Fatal(err)
	}
	good := config(srv.Config(srv.NewBucketName()))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, tc := range []struct {
		name        string
		edit        func(*s3blob.Config)
		wantText    string
		unavailable bool
	}{
		{"UnknownAccessKey", func(c *s3blob.Config) { c.AccessKeyID = "nobody" }, "AWS_ACCESS_KEY_ID", false},
		{"WrongSecret", func(c *s3blob.Config) { c.SecretAccessKey = "wrong" }, "AWS_SECRET_ACCESS_KEY", false},
		{"NoBucket", func(c *s3blob.Config) { c.Bucket = "" }, "--s3-bucket", false},
		{"BadEndpoint", func(c *s3blob.Config) { c.Endpoint = "localhost:9000" }, "--s3-endpoint", false},
		{"SmallParts", func(c *s3blob.Config) { c.PartSize = 1024 }, "PartSize", false},
		{"ServerDown", func(c *s3blob.Config) { c.Endpoint = "http://127.0.0.1:1" }, "--s3-endpoint", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.edit(&cfg)
			_, err := s3blob.Open(ctx, cfg)
			if err == nil {
				t.Fatalf("Open succeeded")
			}
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("Open: %v; want the message to name %s", err, tc.wantText)
			}
			if got := errors.Is(err, blob.ErrUnavailable); got != tc.unavailable {
				t.Errorf("Open: %v; ErrUnavailable = %v, want %v", err, got, tc.unavailable)
			}
			if strings.Contains(err.Error(), good.SecretAccessKey) {
				t.Errorf("error leaks the secret: %v", err)
			}
		})
	}
}

// TestServerDown stops the S3 server under an open Store: every call fails
// with blob.ErrUnavailable, and the Store works again once it is back.
func TestServerDown(t *testing.T) {
	srv := s3test.Start(t)
	s := open(t, config(srv.NewBucket(t)))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := s.Put(ctx, "k", bytes.NewReader([]byte("v"))); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	calls := []struct {
		name string
		call func() error
	}{
		{"Put", func() error { _, err := s.Put(ctx, "k2", bytes.NewReader([]byte("v"))); return err }},
		{"PutMultipart", func() error {
			_, err := s.Put(ctx, "k3", bytes.NewReader(make([]byte, s3blob.MinPartSize+1)))
			return err
		}},
		{"Get", func() error { _, _, err := s.Get(ctx, "k"); return err }},
		{"Stat", func() error { _, err := s.Stat(ctx, "k"); return err }},
		{"Delete", func() error { return s.Delete(ctx, "k") }},
		{"Ping", func() error { return s.Ping(ctx) }},
	}
	for _, c := range calls {
		t.Run("down/"+c.name, func(t *testing.T) {
			if err := c.call(); !errors.Is(err, blob.ErrUnavailable) {
				t.Errorf("%s with the server down: %v, want ErrUnavailable", c.name, err)
			}
		})
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if info, err := s.Stat(ctx, "k"); err != nil || info.Size != 1 {
		t.Fatalf("Stat after restart = %+v, %v", info, err)
	}
}

// TestServerVerifiesChecksum documents what the store relies on: the server
// refuses a body whose x-amz-checksum-sha256 does not match it.
func TestServerVerifiesChecksum(t *testing.T) {
	cfg := s3test.New(t)
	srv, _ := s3test.Shared()
	ctx := context.Background()
	_, err := srv.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: &cfg.Bucket, Key: aws.String("k"),
		Body:           strings.NewReader("hello"),
		ChecksumSHA256: aws.String("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="), // sha256 of ""
	})
	if err == nil {
		t.Fatalf("the server stored a body with a wrong SHA-256 checksum")
	}
}

// TestCredentialsFromEnvironment opens with no keys in Config: they come
// from the standard chain, here AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
func TestCredentialsFromEnvironment(t *testing.T) {
	c := s3test.New(t)
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", dir+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", dir+"/none")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_ACCESS_KEY_ID", c.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", c.SecretKey)
	t.Setenv("AWS_REGION", c.Region)
	s := open(t, s3blob.Config{Endpoint: c.Endpoint, Bucket: c.Bucket, UsePathStyle: true})
	if _, err := s.Put(context.Background(), "k", strings.NewReader("v")); err != nil {
		t.Fatalf("Put: %v", err)
	}
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s3blob.Open(ctx, s3blob.Config{Endpoint: c.Endpoint, Bucket: c.Bucket, UsePathStyle: true}); err == nil ||
		!strings.Contains(err.Error(), "AWS_SECRET_ACCESS_KEY") || !strings.Contains(err.Error(), "EnvConfigCredentials") {
		t.Errorf("Open with a wrong secret in the environment: %v; want it to name AWS_SECRET_ACCESS_KEY and the source", err)
	}
}

// TestRestartUnderLoad keeps writers and readers busy while the S3 server
// stops and starts: every failure must be ErrUnavailable (what makes the
// runtime retry a claim-check), and once it is back every call succeeds.
func TestRestartUnderLoad(t *testing.T) {
	srv := s3test.Start(t)
	s := open(t, config(srv.NewBucket(t)))
	ctx := context.Background()
	if _, err := s.Put(ctx, "seed", strings.NewReader("v")); err != nil {
		t.Fatalf("Put: %v", err)
	}
	var (
		stop        = make(chan struct{})
		wg          sync.WaitGroup
		ok, unavail atomic.Int64
		mu          sync.Mutex
		other       []error
	)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var err error
				if w%2 == 0 {
					_, err = s.Put(ctx, fmt.Sprintf("w%d/%d", w, i), bytes.NewReader(make([]byte, 1000)))
				} else {
					var rc io.ReadCloser
					if rc, _, err = s.Get(ctx, "seed"); err == nil {
						_, err = io.Copy(io.Discard, rc)
						rc.Close()
					}
				}
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, blob.ErrUnavailable):
					unavail.Add(1)
				default:
					mu.Lock()
					other = append(other, err)
					mu.Unlock()
				}
			}
		}()
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor("calls before the outage", func() bool { return ok.Load() >= 20 })
	if err := srv.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	waitFor("calls to fail during the outage", func() bool { return unavail.Load() >= 8 })
	if err := srv.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	before := ok.Load()
	waitFor("calls to succeed after the restart", func() bool { return ok.Load() >= before+20 })
	close(stop)
	wg.Wait()
	t.Logf("ok %d, unavailable %d", ok.Load(), unavail.Load())
	for _, err := range other {
		t.Errorf("failure that is not ErrUnavailable: %v", err)
	}
}
