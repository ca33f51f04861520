package s3test_test

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vrsky/vrsky/internal/testenv/s3test"
)

func TestMain(m *testing.M) { s3test.Main(m) }

func TestBucketsAreSeparate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b := s3test.New(t), s3test.New(t)
	if a.Bucket == b.Bucket {
		t.Fatalf("New returned bucket %s twice", a.Bucket)
	}
	srv, err := s3test.Shared()
	if err != nil {
		t.Fatal(err)
	}
	c := srv.Client()
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(a.Bucket), Key: aws.String("x/y"),
		Body: bytes.NewReader([]byte("hello")), Metadata: map[string]string{"sha256": "abc"}}); err != nil {
		t.Fatalf("PutObject: %v", err)
	}
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(a.Bucket), Key: aws.String("x/y")})
	if err != nil {
		t.Fatalf("GetObject: %v", err)
	}
	body, _ := io.ReadAll(out.Body)
	out.Body.Close()
	if string(body) != "hello" || out.Metadata["sha256"] != "abc" {
		t.Errorf("GetObject = %q, metadata %v", body, out.Metadata)
	}
	if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(b.Bucket), Key: aws.String("x/y")}); err == nil {
		t.Errorf("object visible in the other bucket")
	}
}

func TestStopStart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv := s3test.Start(t)
	cfg := srv.NewBucket(t)
	c := srv.Client()
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(cfg.Bucket), Key: aws.String("k"), Body: bytes.NewReader([]byte("v"))}); err != nil {
		t.Fatalf("PutObject: %v", err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := c.ListBuckets(ctx, &s3.ListBucketsInput{}); err == nil {
		t.Fatalf("stopped server answered")
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("Start again: %v", err)
	}
	if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(cfg.Bucket), Key: aws.String("k")}); err != nil {
		t.Fatalf("object lost across restart: %v", err)
	}
}
