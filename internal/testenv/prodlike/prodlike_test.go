package prodlike_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/vrsky/vrsky/internal/testenv/prodlike"
	"github.com/vrsky/vrsky/platform/blob/s3blob"
	"github.com/vrsky/vrsky/platform/store"
	"github.com/vrsky/vrsky/platform/store/pgstore"
)

func TestMain(m *testing.M) { prodlike.Main(m) }

// TestBackendsWork opens both production stores on the backends.
func TestBackendsWork(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := prodlike.New(t)
	pg, err := pgstore.Open(ctx, b.DatabaseURL)
	if err != nil {
		t.Fatalf("pgstore: %v", err)
	}
	defer pg.Close()
	if _, err := pg.CreateTenant(ctx, store.Tenant{Name: "acme"}); err != nil {
		t.Fatalf("CreateTenant: %v", err)
	}
	bs, err := s3blob.Open(ctx, s3blob.Config{Endpoint: b.S3.Endpoint, Bucket: b.S3.Bucket, Region: b.S3.Region,
		UsePathStyle: true, AccessKeyID: b.S3.AccessKey, SecretAccessKey: b.S3.SecretKey})
	if err != nil {
		t.Fatalf("s3blob: %v", err)
	}
	if _, err := bs.Put(ctx, "k", bytes.NewReader([]byte("v"))); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if len(b.Flags()) == 0 || len(b.Env()) == 0 {
		t.Fatalf("no flags or env")
	}
}
