package blob

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// defaultOpTimeout bounds metadata operations (Stat, Delete, opening a Get)
// when the caller's context has no deadline.
const defaultOpTimeout = 10 * time.Second

// NATSStore keeps objects in one NATS Object Store bucket. Objects are
// streamed in 128 KiB chunks both ways; NATS computes the SHA-256 digest on
// Put and Get verifies it at the end of the stream.
type NATSStore struct {
	obs    jetstream.ObjectStore
	bucket string
	// leader is the bucket's stream when it is replicated: Get then reads
	// the chunks from the stream leader (see Get).
	leader jetstream.Stream
}

var _ Store = (*NATSStore)(nil)

// NewNATS opens the object-store bucket on js, creating it with the given
// replication factor (0 means 1) if it is missing.
func NewNATS(ctx context.Context, js jetstream.JetStream, bucket string, replicas int) (*NATSStore, error) {
	octx, cancel := opContext(ctx)
	defer cancel()
	obs, err := js.ObjectStore(octx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		obs, err = js.CreateObjectStore(octx, jetstream.ObjectStoreConfig{
			Bucket:      bucket,
			Description: "VRSky objects",
			Storage:     jetstream.FileStorage,
			Replicas:    max(replicas, 1),
		})
		if errors.Is(err, jetstream.ErrBucketExists) || errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			obs, err = js.ObjectStore(octx, bucket)
		}
	}
	if err == nil {
		obs, err = consistentReads(octx, js, obs, bucket)
	}
	if err != nil {
		return nil, fmt.Errorf("blob: open NATS object store %q: %w", bucket, mapErr(octx, err))
	}
	s := &NATSStore{obs: obs, bucket: bucket}
	if replicas > 1 {
		if s.leader, err = js.Stream(octx, "OBJ_"+bucket); err != nil {
			return nil, fmt.Errorf("blob: open NATS object store %q: %w", bucket, mapErr(octx, err))
		}
	}
	return s, nil
}

// consistentReads turns off direct gets on a replicated bucket, so object
// metadata is read from the stream leader: with direct gets a follower
// that has not applied a Put yet would answer "not found" to a consumer
// on another node that just received the claim-check reference. On a
// single server direct gets are kept.
func consistentReads(ctx context.Context, js jetstream.JetStream, obs jetstream.ObjectStore, bucket string) (jetstream.ObjectStore, error) {
	name := "OBJ_" + bucket
	st, err := js.Stream(ctx, name)
	if err != nil {
		return nil, err
	}
	cfg := st.CachedInfo().Config
	if cfg.Replicas <= 1 || !cfg.AllowDirect {
		return obs, nil
	}
	cfg.AllowDirect = false
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		return nil, fmt.Errorf("turn off direct gets on %s: %w", name, err)
	}
	return js.ObjectStore(ctx, bucket)
}

// Put implements Store.
func (s *NATSStore) Put(ctx context.Context, key string, r io.Reader) (Info, error) {
	if err := ValidateKey(key); err != nil {
		return Info{}, fmt.Errorf("blob: put: %w", err)
	}
	oi, err := s.obs.Put(ctx, jetstream.ObjectMeta{Name: key}, r)
	if err != nil {
		return Info{}, fmt.Errorf("blob: put %s: %w", key, mapErr(ctx, err))
	}
	info, err := toInfo(oi)
	if err != nil {
		return Info{}, fmt.Errorf("blob: put %s: %w", key, err)
	}
	return info, nil
}

// Get implements Store. The reader fails with an error at the end of the
// stream if the content does not match the stored digest.
func (s *NATSStore) Get(ctx context.Context, key string) (io.ReadCloser, Info, error) {
	if err := ValidateKey(key); err != nil {
		return nil, Info{}, fmt.Errorf("blob: get: %w", err)
	}
	if s.leader != nil {
		return s.getFromLeader(ctx, key)
	}
	res, err := s.obs.Get(ctx, key)
	if err != nil {
		return nil, Info{}, fmt.Errorf("blob: get %s: %w", key, mapErr(ctx, err))
	}
	oi, err := res.Info()
	if err != nil {
		_ = res.Close()
		return nil, Info{}, fmt.Errorf("blob: get %s: %w", key, mapErr(ctx, err))
	}
	info, err := toInfo(oi)
	if err != nil {
		_ = res.Close()
		return nil, Info{}, fmt.Errorf("blob: get %s: %w", key, err)
	}
	return &natsReader{ctx: ctx, res: res, key: key}, info, nil
}

// natsReader wraps errors from the chunk stream like the rest of the store.
type natsReader struct {
	ctx context.Context // Get's: a cancelled read is not an outage
	res jetstream.ObjectResult
	key string
}

func (r *natsReader) Read(p []byte) (int, error) {
	n, err := r.res.Read(p)
	if err != nil && err != io.EOF {
		if errors.Is(err, jetstream.ErrDigestMismatch) {
			return n, fmt.Errorf("blob: read %s: %w", r.key, err)
		}
		return n, fmt.Errorf("blob: read %s: %w", r.key, mapErr(r.ctx, err))
	}
	return n, err
}

func (r *natsReader) Close() error { return r.res.Close() }

// getFromLeader streams a replicated object chunk by chunk with "next
// message on subject" requests, which the stream leader answers. The NATS
// client's own Get reads through a consumer that may sit on a follower
// still applying the Put, and would see the object end early.
func (s *NATSStore) getFromLeader(ctx context.Context, key string) (io.ReadCloser, Info, error) {
	octx, cancel := opContext(ctx)
	oi, err := s.obs.GetInfo(octx, key)
	cancel()
	if err != nil {
		return nil, Info{}, fmt.Errorf("blob: get %s: %w", key, mapErr(octx, err))
	}
	info, err := toInfo(oi)
	if err != nil {
		return nil, Info{}, fmt.Errorf("blob: get %s: %w", key, err)
	}
	return &leaderReader{ctx: ctx, st: s.leader, key: key, subject: "$O." + s.bucket + ".C." + oi.NUID,
		left: oi.Chunks, want: info, h: sha256.New(), seq: 1}, info, nil
}

// leaderReader reads an object's chunks from the stream leader in order and
// checks size and digest at the end.
type leaderReader struct {
	ctx     context.Context
	st      jetstream.Stream
	key     string
	subject string
	seq     uint64
	left    uint32
	buf     []byte
	want    Info
	h       hash.Hash
	n       int64
	err     error
}

func (r *leaderReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.left == 0 {
			r.err = io.EOF
			if got := hex.EncodeToString(r.h.Sum(nil)); r.n != r.want.Size || got != r.want.SHA256 {
				r.err = fmt.Errorf("blob: read %s: %w: %d bytes with sha256 %s, want %d bytes with %s",
					r.key, jetstream.ErrDigestMismatch, r.n, got, r.want.Size, r.want.SHA256)
			}
			continue
		}
		ctx, cancel := opContext(r.ctx)
		m, err := r.st.GetMsg(ctx, r.seq, jetstream.WithGetMsgSubject(r.subject))
		cancel()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				// Deleted or replaced while we read it.
				err = fmt.Errorf("%w: chunks gone while reading (object replaced or deleted)", ErrNotFound)
			} else {
				err = mapErr(ctx, err)
			}
			r.err = fmt.Errorf("blob: read %s: %w", r.key, err)
			return 0, r.err
		}
		r.seq, r.left, r.buf = m.Sequence+1, r.left-1, m.Data
		r.h.Write(m.Data)
		r.n += int64(len(m.Data))
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func (r *leaderReader) Close() error {
	if r.err == nil {
		r.err = errors.New("blob: reader closed")
	}
	r.buf = nil
	return nil
}

// Stat implements Store.
func (s *NATSStore) Stat(ctx context.Context, key string) (Info, error) {
	if err := ValidateKey(key); err != nil {
		return Info{}, fmt.Errorf("blob: stat: %w", err)
	}
	ctx, cancel := opContext(ctx)
	defer cancel()
	oi, err := s.obs.GetInfo(ctx, key)
	if err != nil {
		return Info{}, fmt.Errorf("blob: stat %s: %w", key, mapErr(ctx, err))
	}
	info, err := toInfo(oi)
	if err != nil {
		return Info{}, fmt.Errorf("blob: stat %s: %w", key, err)
	}
	return info, nil
}

// Delete implements Store.
func (s *NATSStore) Delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return fmt.Errorf("blob: delete: %w", err)
	}
	ctx, cancel := opContext(ctx)
	defer cancel()
	err := s.obs.Delete(ctx, key)
	if err == nil || errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil
	}
	return fmt.Errorf("blob: delete %s: %w", key, mapErr(ctx, err))
}

func toInfo(oi *jetstream.ObjectInfo) (Info, error) {
	sum, err := jetstream.DecodeObjectDigest(oi.Digest)
	if err != nil && oi.Size == 0 && oi.Digest == "" {
		sum, err = emptySHA256, nil
	}
	if err != nil {
		return Info{}, fmt.Errorf("digest %q: %w", oi.Digest, err)
	}
	return Info{Key: oi.Name, Size: int64(oi.Size), SHA256: hex.EncodeToString(sum)}, nil
}

var emptySHA256, _ = hex.DecodeString("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")

// mapErr maps "no such object" to ErrNotFound and transport failures to
// ErrUnavailable, keeping the cause.
func mapErr(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, jetstream.ErrObjectNotFound):
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		return err
	case errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, nats.ErrTimeout),
		errors.Is(err, nats.ErrConnectionClosed),
		errors.Is(err, nats.ErrConnectionDraining),
		errors.Is(err, nats.ErrConnectionReconnecting),
		errors.Is(err, nats.ErrDisconnected),
		errors.Is(err, nats.ErrNoServers),
		errors.Is(err, nats.ErrNoResponders),
		errors.Is(err, jetstream.ErrNoStreamResponse),
		errors.Is(err, jetstream.ErrJetStreamNotEnabled),
		errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount),
		errors.Is(err, jetstream.ErrBucketNotFound):
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.Code == 503 {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

func opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, defaultOpTimeout)
}
