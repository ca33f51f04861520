package natsx_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/vrsky/vrsky/platform/natsx"
	"github.com/vrsky/vrsky/platform/natsx/natsxtest"
)

// TestEnsureConcurrentR3: three nodes starting at once on a fresh 3-node
// cluster each create the same R3 key-value bucket, object store and
// stream, each through Ensure: all of them succeed and each ends up with
// three replicas. (Without Ensure, nats-server 2.15.2 answered some of
// these creates with a timeout or "stream name already in use".)
func TestEnsureConcurrentR3(t *testing.T) {
	cluster := natsxtest.StartCluster(t, 3)
	opens := []struct {
		name, stream string
		open         func(context.Context, jetstream.JetStream) error
	}{
		{"kv", "KV_ensure-kv", func(ctx context.Context, js jetstream.JetStream) error {
			_, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "ensure-kv", History: 1, Storage: jetstream.FileStorage, Replicas: 3})
			return err
		}},
		{"object store", "OBJ_ensure-obj", func(ctx context.Context, js jetstream.JetStream) error {
			_, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: "ensure-obj", Storage: jetstream.FileStorage, Replicas: 3})
			return err
		}},
		{"stream", "ENSURE", func(ctx context.Context, js jetstream.JetStream) error {
			_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "ENSURE", Subjects: []string{"ensure.>"}, Storage: jetstream.FileStorage, Replicas: 3})
			return err
		}},
	}
	conns := []*natsx.Conn{cluster.Connect(t), cluster.Connect(t), cluster.Connect(t)}
	var wg sync.WaitGroup
	errs := make([]error, len(conns)*len(opens))
	for i, conn := range conns {
		for j, o := range opens {
			wg.Go(func() {
				_, err := natsx.Ensure(context.Background(), func(ctx context.Context) (struct{}, error) {
					return struct{}{}, o.open(ctx, conn.JS)
				})
				if err != nil {
					errs[i*len(opens)+j] = fmt.Errorf("node %d, %s: %w", i, o.name, err)
				}
			})
		}
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for _, o := range opens {
		st, err := conns[0].JS.Stream(context.Background(), o.stream)
		if err != nil {
			t.Fatalf("%s: %v", o.name, err)
		}
		if r := st.CachedInfo().Config.Replicas; r != 3 {
			t.Errorf("%s: %d replicas, want 3", o.name, r)
		}
	}
}

// TestEnsureRetriesOnlyWhatARaceExplains: Ensure tries again after a
// timed-out attempt or a create that lost a race, and returns any other
// error at once, as it is, and the parent context's end too.
func TestEnsureRetriesOnlyWhatARaceExplains(t *testing.T) {
	errBad := errors.New("bad config")
	tests := []struct {
		name      string
		failures  []error // what the first attempts return
		wantCalls int
		wantErr   error
	}{
		{"first attempt succeeds", nil, 1, nil},
		{"attempt timed out", []error{context.DeadlineExceeded}, 2, nil},
		{"name in use, then bucket exists", []error{jetstream.ErrStreamNameAlreadyInUse, jetstream.ErrBucketExists}, 3, nil},
		{"no peers for placement", []error{&jetstream.APIError{Code: 500, ErrorCode: 10005, Description: "no suitable peers for placement"}}, 2, nil},
		{"stream placed, not there yet", []error{jetstream.ErrStreamNotFound, fmt.Errorf("open bucket: %w", &jetstream.APIError{Code: 404, ErrorCode: 10059, Description: "stream not found"})}, 3, nil},
		{"in use with a different configuration", []error{&jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeStreamNameInUse}}, 2, nil},
		{"other error", []error{errBad}, 1, errBad},
		{"invalid bucket name", []error{jetstream.ErrInvalidBucketName}, 1, jetstream.ErrInvalidBucketName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			v, err := natsx.Ensure(context.Background(), func(ctx context.Context) (int, error) {
				calls++
				if calls <= len(tt.failures) {
					return 0, tt.failures[calls-1]
				}
				return 42, nil
			})
			if calls != tt.wantCalls || !errors.Is(err, tt.wantErr) || (err == nil && v != 42) {
				t.Fatalf("%d calls, %v, %v; want %d calls, %v", calls, v, err, tt.wantCalls, tt.wantErr)
			}
		})
	}
	t.Run("parent context ends", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		calls := 0
		_, err := natsx.Ensure(ctx, func(ctx context.Context) (int, error) {
			calls++
			cancel()
			<-ctx.Done()
			return 0, ctx.Err()
		})
		if calls != 1 || !errors.Is(err, context.Canceled) {
			t.Fatalf("%d calls, %v; want 1 call, context canceled", calls, err)
		}
	})
}
