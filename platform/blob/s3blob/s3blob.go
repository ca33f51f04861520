// Package s3blob is the S3 implementation of blob.Store, the object store
// of production deployments: AWS S3 or any S3-compatible server (MinIO,
// Versity's gateway, SeaweedFS, Garage, …), through aws-sdk-go-v2.
//
// Objects up to Config.PartSize go up in one PutObject; larger ones in a
// multipart upload, one part in memory at a time, so a Put never holds more
// than PartSize of the object. Every request body carries its SHA-256
// (x-amz-checksum-sha256), which the server checks before it stores the
// bytes. The object's own SHA-256, hex, is kept as user metadata
// (x-amz-meta-sha256); Get checks the bytes it streams against it and fails
// the read at the end of the stream if they differ.
//
// Credentials come from the standard AWS chain (AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY, AWS_PROFILE, web identity, instance roles) unless
// Config carries explicit keys. Open checks them against the bucket and
// creates the bucket if it is missing, so bad settings fail at start with
// an error that names the setting.
package s3blob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/vrsky/vrsky/platform/blob"
)

const (
	// MinPartSize is S3's smallest part of a multipart upload (but the last).
	MinPartSize = 5 << 20
	// DefaultPartSize is the part size when Config.PartSize is 0.
	DefaultPartSize = 8 << 20
	// metaSHA256 is the user-metadata key of the object's hex SHA-256.
	metaSHA256 = "sha256"
	// opTimeout bounds metadata calls (Stat, Delete, opening a Get, Open's
	// checks) when the caller's context has no deadline.
	opTimeout = 30 * time.Second
)

// Config selects the bucket and how to reach it. The zero value of every
// optional field picks the AWS default.
type Config struct {
	// Endpoint is the S3 API's base URL, e.g. "http://minio.internal:9000"
	// (--s3-endpoint). Empty means AWS S3's regional endpoint.
	Endpoint string
	// Bucket holds every object (--s3-bucket). Created if missing.
	Bucket string
	// Prefix is prepended to every key, e.g. "vrsky/", to share a bucket.
	Prefix string
	// Region is the signing region. Empty takes AWS_REGION or the profile's
	// region, and "us-east-1" if neither is set.
	Region string
	// UsePathStyle addresses buckets as endpoint/bucket/key instead of
	// bucket.endpoint/key. Self-hosted stores usually need it.
	UsePathStyle bool
	// AccessKeyID, SecretAccessKey and SessionToken are explicit
	// credentials. Empty uses the standard AWS credential chain.
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
	// PartSize is the multipart part size and the largest object sent in
	// one request; at least MinPartSize. 0 means DefaultPartSize. Each Put
	// holds one part in memory. Objects above 5 GiB are not supported
	// (recording a multipart object's digest uses CopyObject).
	PartSize int64
	// HTTPClient replaces the SDK's HTTP client (tests, proxies). Optional.
	HTTPClient *http.Client
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	if c.Bucket == "" {
		return errors.New("s3blob: the bucket (--s3-bucket) is required")
	}
	if c.Endpoint != "" {
		u, err := url.Parse(c.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("s3blob: the endpoint (--s3-endpoint) %q is not an http(s) URL", c.Endpoint)
		}
	}
	if c.PartSize != 0 && c.PartSize < MinPartSize {
		return fmt.Errorf("s3blob: PartSize %d is below S3's minimum of %d", c.PartSize, MinPartSize)
	}
	if (c.AccessKeyID == "") != (c.SecretAccessKey == "") {
		return errors.New("s3blob: give both the access key ID and the secret access key, or neither")
	}
	if c.Prefix != "" && !strings.HasSuffix(c.Prefix, "/") {
		return fmt.Errorf("s3blob: Prefix %q must end with \"/\"", c.Prefix)
	}
	return nil
}

// Store is an S3 bucket as a blob.Store. It is safe for concurrent use.
type Store struct {
	client   *s3.Client
	bucket   string
	prefix   string
	partSize int64
}

var _ blob.Store = (*Store)(nil)

// Open checks cfg, resolves credentials, checks that they may use the
// bucket, creates the bucket if it is missing, and returns the Store.
// An unreachable endpoint is reported as blob.ErrUnavailable; rejected
// credentials, a wrong region or a missing bucket permission are errors
// that name the setting to fix.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var loadOpts []func(*config.LoadOptions) error
	if cfg.Region != "" {
		loadOpts = append(loadOpts, config.WithRegion(cfg.Region))
	}
	if cfg.AccessKeyID != "" {
		loadOpts = append(loadOpts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, cfg.SessionToken)))
	}
	if cfg.HTTPClient != nil {
		loadOpts = append(loadOpts, config.WithHTTPClient(cfg.HTTPClient))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("s3blob: load AWS configuration (AWS_* environment, ~/.aws): %w", err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = "us-east-1"
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.UsePathStyle
		// We send and check SHA-256 ourselves; the SDK's default CRC32
		// trailers are not supported by every S3-compatible server.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	s := &Store{client: client, bucket: cfg.Bucket, prefix: cfg.Prefix, partSize: cfg.PartSize}
	if s.partSize == 0 {
		s.partSize = DefaultPartSize
	}

	octx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	creds, err := awsCfg.Credentials.Retrieve(octx)
	if err != nil {
		return nil, fmt.Errorf("s3blob: no usable AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "+
			"(or AWS_PROFILE, a web identity or an instance role): %w", err)
	}
	where := fmt.Sprintf("bucket %q at %s (region %s, access key %s from %s)",
		cfg.Bucket, endpointName(cfg.Endpoint), awsCfg.Region, maskKey(creds.AccessKeyID), creds.Source)
	if err := s.ensureBucket(octx, awsCfg.Region); err != nil {
		return nil, fmt.Errorf("s3blob: %s: %w", where, explain(octx, err))
	}
	return s, nil
}

// ensureBucket lists one key to check access, and creates the bucket when
// the server says it does not exist.
func (s *Store) ensureBucket(ctx context.Context, region string) error {
	_, err := s.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &s.bucket, MaxKeys: aws.Int32(1)})
	if code := apiCode(err); code == "NoSuchBucket" || code == "NotFound" {
		in := &s3.CreateBucketInput{Bucket: &s.bucket}
		if region != "us-east-1" {
			in.CreateBucketConfiguration = &types.CreateBucketConfiguration{
				LocationConstraint: types.BucketLocationConstraint(region)}
		}
		_, err = s.client.CreateBucket(ctx, in)
		if c := apiCode(err); c == "BucketAlreadyOwnedByYou" || c == "BucketAlreadyExists" {
			// Someone (another vrsky) created it in between; the listing
			// below tells whether we may use it.
			err = nil
		}
		if err != nil {
			return fmt.Errorf("create bucket: %w", err)
		}
		_, err = s.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &s.bucket, MaxKeys: aws.Int32(1)})
	}
	return err
}

// explain adds which setting to fix to Open's errors.
func explain(ctx context.Context, err error) error {
	switch apiCode(err) {
	case "InvalidAccessKeyId", "XAdminUserNotFound": // the latter: Versity's gateway
		return fmt.Errorf("the server does not know the access key: check AWS_ACCESS_KEY_ID (or the profile in AWS_PROFILE): %w", err)
	case "SignatureDoesNotMatch":
		return fmt.Errorf("the signature was rejected: check AWS_SECRET_ACCESS_KEY (and the region, AWS_REGION): %w", err)
	case "AccessDenied", "Forbidden", "AllAccessDisabled":
		return fmt.Errorf("access denied: the credentials (AWS_ACCESS_KEY_ID / AWS_PROFILE) may not use this bucket (--s3-bucket): %w", err)
	case "AuthorizationHeaderMalformed", "PermanentRedirect", "IllegalLocationConstraintException", "InvalidRegion":
		return fmt.Errorf("wrong region: check AWS_REGION: %w", err)
	case "InvalidBucketName":
		return fmt.Errorf("invalid bucket name (--s3-bucket): %w", err)
	case "ExpiredToken", "InvalidToken", "TokenRefreshRequired":
		return fmt.Errorf("the session token is expired or invalid: check AWS_SESSION_TOKEN: %w", err)
	}
	err = mapErr(ctx, err)
	if errors.Is(err, blob.ErrUnavailable) {
		return fmt.Errorf("cannot reach the endpoint (--s3-endpoint): %w", err)
	}
	return err
}

// Put implements blob.Store.
func (s *Store) Put(ctx context.Context, key string, r io.Reader) (blob.Info, error) {
	if err := blob.ValidateKey(key); err != nil {
		return blob.Info{}, fmt.Errorf("s3blob: put: %w", err)
	}
	buf := make([]byte, s.partSize)
	n, err := io.ReadFull(r, buf)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return s.putSingle(ctx, key, buf[:n])
	case err != nil:
		return blob.Info{}, fmt.Errorf("s3blob: put %s: read source: %w", key, err)
	}
	return s.putMultipart(ctx, key, buf, r)
}

func (s *Store) putSingle(ctx context.Context, key string, data []byte) (blob.Info, error) {
	sum := sha256.Sum256(data)
	hexSum := hex.EncodeToString(sum[:])
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:         &s.bucket,
		Key:            aws.String(s.prefix + key),
		Body:           bytes.NewReader(data),
		ContentLength:  aws.Int64(int64(len(data))),
		ChecksumSHA256: aws.String(base64.StdEncoding.EncodeToString(sum[:])),
		Metadata:       map[string]string{metaSHA256: hexSum},
	})
	if err != nil {
		return blob.Info{}, fmt.Errorf("s3blob: put %s: %w", key, mapErr(ctx, err))
	}
	return blob.Info{Key: key, Size: int64(len(data)), SHA256: hexSum}, nil
}

// putMultipart uploads first (a full part) and the rest of r part by part.
// S3 needs the metadata when the upload starts, before the digest is known,
// so the digest is added afterwards by copying the object onto itself with
// new metadata, on condition that it is still the object we wrote.
func (s *Store) putMultipart(ctx context.Context, key string, first []byte, r io.Reader) (info blob.Info, err error) {
	fullKey := s.prefix + key
	up, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:            &s.bucket,
		Key:               &fullKey,
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
	})
	if err != nil {
		return blob.Info{}, fmt.Errorf("s3blob: put %s: start multipart upload: %w", key, mapErr(ctx, err))
	}
	defer func() {
		if err != nil {
			// Free the parts even when ctx is what failed.
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opTimeout)
			defer cancel()
			_, _ = s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
				Bucket: &s.bucket, Key: &fullKey, UploadId: up.UploadId})
		}
	}()

	whole := sha256.New()
	var (
		parts []types.CompletedPart
		size  int64
		buf   = first
		n     = len(first)
	)
	for partNum := int32(1); n > 0; partNum++ {
		data := buf[:n]
		whole.Write(data)
		size += int64(n)
		psum := sha256.Sum256(data)
		pb64 := base64.StdEncoding.EncodeToString(psum[:])
		out, err := s.client.UploadPart(ctx, &s3.UploadPartInput{
			Bucket:         &s.bucket,
			Key:            &fullKey,
			UploadId:       up.UploadId,
			PartNumber:     aws.Int32(partNum),
			Body:           bytes.NewReader(data),
			ContentLength:  aws.Int64(int64(n)),
			ChecksumSHA256: aws.String(pb64),
		})
		if err != nil {
			return blob.Info{}, fmt.Errorf("s3blob: put %s: part %d: %w", key, partNum, mapErr(ctx, err))
		}
		parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(partNum), ChecksumSHA256: aws.String(pb64)})

		var rerr error
		n, rerr = io.ReadFull(r, buf)
		if rerr != nil && rerr != io.EOF && rerr != io.ErrUnexpectedEOF {
			return blob.Info{}, fmt.Errorf("s3blob: put %s: read source: %w", key, rerr)
		}
	}
	done, err := s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          &s.bucket,
		Key:             &fullKey,
		UploadId:        up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		return blob.Info{}, fmt.Errorf("s3blob: put %s: complete multipart upload: %w", key, mapErr(ctx, err))
	}
	hexSum := hex.EncodeToString(whole.Sum(nil))
	_, err = s.client.CopyObject(ctx, &s3.CopyObjectInput{
		Bucket:            &s.bucket,
		Key:               &fullKey,
		CopySource:        aws.String(s.bucket + "/" + url.PathEscape(fullKey)),
		CopySourceIfMatch: done.ETag,
		MetadataDirective: types.MetadataDirectiveReplace,
		Metadata:          map[string]string{metaSHA256: hexSum},
	})
	if err != nil && !isPreconditionFailed(err) {
		// The upload is complete: do not abort it, but report that the
		// digest could not be recorded.
		err = fmt.Errorf("s3blob: put %s: record digest: %w", key, mapErr(ctx, err))
		return blob.Info{}, errors.Join(err, s.deleteQuiet(ctx, fullKey))
	}
	// A failed precondition means another Put replaced the object after
	// ours: ours happened, and was overwritten, as with a plain PutObject.
	return blob.Info{Key: key, Size: size, SHA256: hexSum}, nil
}

func (s *Store) deleteQuiet(ctx context.Context, fullKey string) error {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opTimeout)
	defer cancel()
	_, err := s.client.DeleteObject(dctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &fullKey})
	return err
}

// Get implements blob.Store. The reader fails at the end of the stream if
// the bytes do not match the stored size and digest.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, blob.Info, error) {
	if err := blob.ValidateKey(key); err != nil {
		return nil, blob.Info{}, fmt.Errorf("s3blob: get: %w", err)
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: aws.String(s.prefix + key)})
	if err != nil {
		return nil, blob.Info{}, fmt.Errorf("s3blob: get %s: %w", key, mapErr(ctx, err))
	}
	info := blob.Info{Key: key, Size: aws.ToInt64(out.ContentLength), SHA256: out.Metadata[metaSHA256]}
	return &verifyingReader{ctx: ctx, body: out.Body, key: key, want: info, h: sha256.New()}, info, nil
}

// verifyingReader checks size and digest when the body ends.
type verifyingReader struct {
	ctx  context.Context // Get's: a cancelled read is not an outage
	body io.ReadCloser
	key  string
	want blob.Info
	h    hash.Hash
	n    int64
}

// ErrDigestMismatch: the bytes read do not match the object's recorded
// size or SHA-256.
// It wraps blob.ErrCorrupt.
var ErrDigestMismatch = fmt.Errorf("s3blob: %w: content does not match its digest", blob.ErrCorrupt)

func (v *verifyingReader) Read(p []byte) (int, error) {
	n, err := v.body.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if err == io.EOF {
		got := hex.EncodeToString(v.h.Sum(nil))
		if v.n != v.want.Size || (v.want.SHA256 != "" && got != v.want.SHA256) {
			return n, fmt.Errorf("%w: %s: read %d bytes with sha256 %s, want %d bytes with %s",
				ErrDigestMismatch, v.key, v.n, got, v.want.Size, v.want.SHA256)
		}
		return n, io.EOF
	}
	if err != nil {
		return n, fmt.Errorf("s3blob: read %s: %w", v.key, mapErr(v.ctx, err))
	}
	return n, nil
}

func (v *verifyingReader) Close() error { return v.body.Close() }

// Stat implements blob.Store.
func (s *Store) Stat(ctx context.Context, key string) (blob.Info, error) {
	if err := blob.ValidateKey(key); err != nil {
		return blob.Info{}, fmt.Errorf("s3blob: stat: %w", err)
	}
	ctx, cancel := opContext(ctx)
	defer cancel()
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: aws.String(s.prefix + key)})
	if err != nil {
		return blob.Info{}, fmt.Errorf("s3blob: stat %s: %w", key, mapErr(ctx, err))
	}
	return blob.Info{Key: key, Size: aws.ToInt64(out.ContentLength), SHA256: out.Metadata[metaSHA256]}, nil
}

// Delete implements blob.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := blob.ValidateKey(key); err != nil {
		return fmt.Errorf("s3blob: delete: %w", err)
	}
	ctx, cancel := opContext(ctx)
	defer cancel()
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: aws.String(s.prefix + key)})
	if err != nil && !errors.Is(mapErr(ctx, err), blob.ErrNotFound) {
		return fmt.Errorf("s3blob: delete %s: %w", key, mapErr(ctx, err))
	}
	return nil
}

// Sweep implements blob.Sweeper: it lists the keys under prefix, page by
// page, and deletes the objects last modified before cutoff. (A bucket
// lifecycle rule on the prefix does the same on AWS; not every
// S3-compatible server has them.)
func (s *Store) Sweep(ctx context.Context, prefix string, cutoff time.Time) (int, error) {
	pages := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: aws.String(s.prefix + prefix)})
	n := 0
	for pages.HasMorePages() {
		pctx, cancel := opContext(ctx)
		page, err := pages.NextPage(pctx)
		cancel()
		if err != nil {
			return n, fmt.Errorf("s3blob: sweep %s: %w", prefix, mapErr(ctx, err))
		}
		for _, o := range page.Contents {
			if o.LastModified == nil || !o.LastModified.Before(cutoff) {
				continue
			}
			if err := s.Delete(ctx, strings.TrimPrefix(aws.ToString(o.Key), s.prefix)); err != nil {
				return n, fmt.Errorf("s3blob: sweep: %w", err)
			}
			n++
		}
	}
	return n, nil
}

// Ping checks that the bucket answers (for readiness probes).
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := opContext(ctx)
	defer cancel()
	if _, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &s.bucket}); err != nil {
		return fmt.Errorf("s3blob: ping bucket %s: %w", s.bucket, mapErr(ctx, err))
	}
	return nil
}

// mapErr maps "no such key" to blob.ErrNotFound and failures to reach the
// server (no HTTP response, 5xx, throttling) to blob.ErrUnavailable.
func mapErr(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	switch apiCode(err) {
	case "NoSuchKey", "NotFound":
		return fmt.Errorf("%w: %w", blob.ErrNotFound, err)
	case "SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "RequestTimeTooSkewed":
		return fmt.Errorf("%w: %w", blob.ErrUnavailable, err)
	}
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return err
	}
	var sendErr *smithyhttp.RequestSendError
	if errors.As(err, &sendErr) {
		return fmt.Errorf("%w: %w", blob.ErrUnavailable, err)
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() != 0 {
		switch status := re.HTTPStatusCode(); {
		case status == http.StatusNotFound:
			return fmt.Errorf("%w: %w", blob.ErrNotFound, err)
		case status >= 500 || status == http.StatusTooManyRequests:
			return fmt.Errorf("%w: %w", blob.ErrUnavailable, err)
		}
		return err
	}
	// No HTTP response at all: refused, reset, timed out, DNS.
	return fmt.Errorf("%w: %w", blob.ErrUnavailable, err)
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func isPreconditionFailed(err error) bool {
	if apiCode(err) == "PreconditionFailed" {
		return true
	}
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusPreconditionFailed
}

func opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, opTimeout)
}

func endpointName(e string) string {
	if e == "" {
		return "AWS S3"
	}
	return e
}

// maskKey shows enough of an access key ID to recognise it.
func maskKey(id string) string {
	if len(id) <= 4 {
		return "****"
	}
	return id[:4] + "…"
}
