package blob

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/vrsky/vrsky/platform/natsx"
)

// defaultOpTimeout bounds metadata operations (Stat, Delete, opening a Get)
// when the caller's context has no deadline.
const defaultOpTimeout = 10 * time.Second

// NATSStore keeps objects in one NATS Object Store bucket. Objects are
// streamed in 128 KiB chunks both ways; NATS computes the SHA-256 digest on
// Put and Get verifies it at the end of the stream.
type NATSStore struct {
	js     jetstream.JetStream
	obs    jetstream.ObjectStore
	bucket string
	// stream is the bucket's stream: Get reads the chunks from it one at
	// a time (see chunkReader).
	stream jetstream.Stream
}

var _ Store = (*NATSStore)(nil)

// NewNATS opens the object-store bucket on js, creating it with the given
// replication factor (0 means 1) if it is missing.
//
// Nodes that start together on a fresh cluster race to create the bucket
// and to turn its direct gets off (consistentReads): natsx.Ensure tries
// again after what such a race answers (TestNATSOpenConcurrentR3).
func NewNATS(ctx context.Context, js jetstream.JetStream, bucket string, replicas int) (*NATSStore, error) {
	s, err := natsx.Ensure(ctx, func(ctx context.Context) (*NATSStore, error) {
		return openNATS(ctx, js, bucket, replicas)
	})
	if err != nil {
		return nil, fmt.Errorf("blob: open NATS object store %q: %w", bucket, mapErr(ctx, err))
	}
	return s, nil
}

func openNATS(octx context.Context, js jetstream.JetStream, bucket string, replicas int) (*NATSStore, error) {
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
		return nil, err
	}
	s := &NATSStore{js: js, obs: obs, bucket: bucket}
	if s.stream, err = js.Stream(octx, "OBJ_"+bucket); err != nil {
		return nil, err
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
//
// It writes the chunks itself, with at most putWindow of them awaiting
// their acknowledgement, in the object store's format (chunks on
// $O.<bucket>.C.<nuid>, then the rolled-up meta message), so the NATS
// client's Get, GetInfo and Delete read it as their own. The client's Put
// publishes every chunk before it waits for any: a 10 MiB payload sat
// whole in the connection's buffers (and, with an embedded server, again
// in the server's), and each call made a JetStream context whose
// goroutine can outlive it (nats.go v1.55.0).
func (s *NATSStore) Put(ctx context.Context, key string, r io.Reader) (Info, error) {
	if err := ValidateKey(key); err != nil {
		return Info{}, fmt.Errorf("blob: put: %w", err)
	}
	octx, cancel := opContext(ctx)
	old, err := s.obs.GetInfo(octx, key, jetstream.GetObjectInfoShowDeleted())
	cancel()
	if err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return Info{}, fmt.Errorf("blob: put %s: %w", key, mapErr(octx, err))
	}
	oi := &jetstream.ObjectInfo{
		ObjectMeta: jetstream.ObjectMeta{Name: key, Opts: &jetstream.ObjectMetaOptions{ChunkSize: chunkSize}},
		Bucket:     s.bucket,
		NUID:       nuid.Next(),
	}
	chunks := "$O." + s.bucket + ".C." + oi.NUID
	if err := s.putChunks(ctx, chunks, r, oi); err != nil {
		pctx, cancel := opContext(context.WithoutCancel(ctx))
		_ = s.stream.Purge(pctx, jetstream.WithPurgeSubject(chunks))
		cancel()
		return Info{}, fmt.Errorf("blob: put %s: %w", key, err)
	}
	if old != nil && old.NUID != "" && old.NUID != oi.NUID {
		// Replaced: the earlier version's chunks go.
		pctx, cancel := opContext(ctx)
		err := s.stream.Purge(pctx, jetstream.WithPurgeSubject("$O."+s.bucket+".C."+old.NUID))
		cancel()
		if err != nil {
			return Info{}, fmt.Errorf("blob: put %s: purge the replaced chunks: %w", key, mapErr(pctx, err))
		}
	}
	info, err := toInfo(oi)
	if err != nil {
		return Info{}, fmt.Errorf("blob: put %s: %w", key, err)
	}
	return info, nil
}

const (
	chunkSize = 128 << 10 // the NATS client's default
	putWindow = 4         // chunks awaiting their acknowledgement
)

// putChunks publishes r in chunks on subject and then the meta message
// describing them (size, count, digest), which makes the object visible.
func (s *NATSStore) putChunks(ctx context.Context, subject string, r io.Reader, oi *jetstream.ObjectInfo) error {
	var (
		bufs    [putWindow + 1][]byte
		pending []jetstream.PubAckFuture
		h       = sha256.New()
	)
	wait := func(f jetstream.PubAckFuture) error {
		wctx, cancel := opContext(ctx)
		defer cancel()
		select {
		case <-f.Ok():
			return nil
		case err := <-f.Err():
			return mapErr(wctx, err)
		case <-wctx.Done():
			return mapErr(wctx, wctx.Err())
		}
	}
	for i := 0; ; i++ {
		if len(pending) == putWindow {
			if err := wait(pending[0]); err != nil {
				return err
			}
			pending = pending[1:]
		}
		buf := bufs[i%len(bufs)]
		if buf == nil {
			buf = make([]byte, chunkSize)
			bufs[i%len(bufs)] = buf
		}
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			h.Write(buf[:n])
			oi.Size += uint64(n)
			oi.Chunks++
			f, perr := s.js.PublishMsgAsync(&nats.Msg{Subject: subject, Data: buf[:n]})
			if perr != nil {
				return mapErr(ctx, perr)
			}
			pending = append(pending, f)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return err
		}
	}
	for _, f := range pending {
		if err := wait(f); err != nil {
			return err
		}
	}
	oi.Digest = jetstream.GetObjectDigestValue(h)
	meta, err := json.Marshal(oi)
	if err != nil {
		return err
	}
	m := nats.NewMsg("$O." + s.bucket + ".M." + base64.URLEncoding.EncodeToString([]byte(oi.Name)))
	m.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
	m.Data = meta
	octx, cancel := opContext(ctx)
	defer cancel()
	if _, err := s.js.PublishMsg(octx, m); err != nil {
		return mapErr(octx, err)
	}
	oi.ModTime = time.Now().UTC()
	return nil
}

// Get implements Store. The reader fails with an error at the end of the
// stream if the content does not match the stored digest.
//
// It reads the chunks itself, one "next message on subject" request at a
// time, rather than through the NATS client's Get: that one subscribes an
// ordered push consumer, which sends the whole object into the client's
// pending buffer as fast as the server can, however slowly the caller
// reads (a 10 MiB payload going to a slow sink sat whole in memory), and
// which on a cluster may run on a follower still applying the Put, and see
// the object end early. The requests are answered by the stream leader.
func (s *NATSStore) Get(ctx context.Context, key string) (io.ReadCloser, Info, error) {
	if err := ValidateKey(key); err != nil {
		return nil, Info{}, fmt.Errorf("blob: get: %w", err)
	}
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
	return &chunkReader{ctx: ctx, st: s.stream, key: key, subject: "$O." + s.bucket + ".C." + oi.NUID,
		left: oi.Chunks, want: info, h: sha256.New(), seq: 1}, info, nil
}

// chunkReader reads an object's chunks in order and checks size and
// digest at the end.
type chunkReader struct {
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

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.left == 0 {
			r.err = io.EOF
			if got := hex.EncodeToString(r.h.Sum(nil)); r.n != r.want.Size || got != r.want.SHA256 {
				r.err = fmt.Errorf("blob: read %s: %w: %w: %d bytes with sha256 %s, want %d bytes with %s",
					r.key, ErrCorrupt, jetstream.ErrDigestMismatch, r.n, got, r.want.Size, r.want.SHA256)
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

func (r *chunkReader) Close() error {
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

// Sweep implements Sweeper. It lists the bucket (one meta message per
// object) and deletes what is old enough.
func (s *NATSStore) Sweep(ctx context.Context, prefix string, cutoff time.Time) (int, error) {
	list, cancel := opContext(ctx)
	infos, err := s.obs.List(list)
	cancel()
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("blob: sweep: %w", mapErr(ctx, err))
	}
	n := 0
	for _, oi := range infos {
		if !strings.HasPrefix(oi.Name, prefix) || !oi.ModTime.Before(cutoff) {
			continue
		}
		if err := s.Delete(ctx, oi.Name); err != nil {
			return n, fmt.Errorf("blob: sweep: %w", err)
		}
		n++
	}
	return n, nil
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
