package postgrescdc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrsky/vrsky/internal/testenv/pgtest"
	"github.com/vrsky/vrsky/platform/natsx/natsxtest"
	"github.com/vrsky/vrsky/runtime"
	"github.com/vrsky/vrsky/runtime/runtimetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// wait is how long tests wait for anything (a loaded 2-core machine).
const wait = 60 * time.Second

// kvState is a runtime.State on a real NATS KV bucket, for running the
// source without an engine.
type kvState struct{ kv jetstream.KeyValue }

func newState(t testing.TB) *kvState {
	t.Helper()
	conn := natsxtest.Start(t)
	kv, err := conn.JS.CreateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: "cdc_test_state"})
	if err != nil {
		t.Fatalf("state bucket: %v", err)
	}
	return &kvState{kv: kv}
}

func (s *kvState) Get(ctx context.Context, key string) ([]byte, error) {
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, runtime.ErrNoState
	}
	if err != nil {
		return nil, err
	}
	return e.Value(), nil
}

func (s *kvState) Put(ctx context.Context, key string, value []byte) error {
	_, err := s.kv.Put(ctx, key, value)
	return err
}

func (s *kvState) Delete(ctx context.Context, key string) error {
	err := s.kv.Delete(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	return err
}

func (s *kvState) Keys(ctx context.Context) ([]string, error) {
	keys, err := s.kv.Keys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil, nil
	}
	return keys, err
}

// countingEmitter records like runtimetest.Emitter (deduplicated by id)
// and also counts every message emitted, duplicates included.
type countingEmitter struct {
	runtimetest.Emitter
	raw       atomic.Int64
	snapshots atomic.Int64 // snapshot rows, duplicates included
}

func (e *countingEmitter) EmitBatch(ctx context.Context, msgs []*runtime.Message) error {
	e.raw.Add(int64(len(msgs)))
	for _, m := range msgs {
		if bytes.HasPrefix(m.Data, []byte(`{"op":"snapshot"`)) {
			e.snapshots.Add(1)
		}
	}
	return e.Emitter.EmitBatch(ctx, msgs)
}

// db is a fresh database with its DSN in an environment variable.
type db struct {
	dsn  string
	env  string // the variable holding dsn
	conn *pgx.Conn
}

func newDB(t *testing.T) *db {
	t.Helper()
	dsn := pgtest.New(t)
	t.Setenv("CDC_TEST_DSN", dsn)
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return &db{dsn: dsn, env: "CDC_TEST_DSN", conn: conn}
}

func (d *db) exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	if _, err := d.conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// slot reads the slot's row: exists, active, confirmed_flush_lsn.
func (d *db) slot(t testing.TB, name string) (exists, active bool, confirmed uint64) {
	t.Helper()
	var lsn *string
	err := d.conn.QueryRow(context.Background(), "SELECT active, confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1", name).Scan(&active, &lsn)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, false, 0
	}
	if err != nil {
		t.Fatalf("read slot %s: %v", name, err)
	}
	if lsn != nil {
		confirmed = parseLSN(t, *lsn)
	}
	return true, active, confirmed
}

func (d *db) currentLSN(t testing.TB) uint64 {
	t.Helper()
	var s string
	if err := d.conn.QueryRow(context.Background(), "SELECT pg_current_wal_insert_lsn()::text").Scan(&s); err != nil {
		t.Fatalf("current lsn: %v", err)
	}
	return parseLSN(t, s)
}

func parseLSN(t testing.TB, s string) uint64 {
	var hi, lo uint32
	if _, err := fmtSscanf(s, &hi, &lo); err != nil {
		t.Fatalf("lsn %q: %v", s, err)
	}
	return uint64(hi)<<32 | uint64(lo)
}

// running is a source running in the background.
type running struct {
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// stop cancels the source and returns what Run returned.
func (r *running) stop() error {
	r.once.Do(func() {
		r.cancel()
		r.err = <-r.done
	})
	return r.err
}

func startSource(t *testing.T, cfg string, env runtime.Env, emit runtime.Emitter) *running {
	t.Helper()
	if env.Tenant == "" {
		env.Tenant, env.Integration = "acme", "orders"
	}
	if env.Logger == nil {
		env.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	src, err := Source.NewSource(json.RawMessage(cfg), env)
	if err != nil {
		t.Fatalf("new source: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- src.Run(ctx, emit) }()
	t.Cleanup(func() { _ = r.stop() })
	return r
}

// waitStreaming waits until the slot has a walsender streaming from it.
func (d *db) waitStreaming(t testing.TB, slot string) {
	t.Helper()
	// A slot is active while CREATE_REPLICATION_SLOT runs too (and is
	// dropped if that is interrupted): wait for START_REPLICATION.
	runtimetest.WaitFor(t, wait, "slot "+slot+" streaming", func() bool {
		var streaming bool
		err := d.conn.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_replication_slots s JOIN pg_stat_replication r ON r.pid = s.active_pid
			WHERE s.slot_name = $1 AND r.state IN ('catchup', 'streaming'))`, slot).Scan(&streaming)
		if err != nil {
			t.Fatalf("slot %s: %v", slot, err)
		}
		return streaming
	})
}

// change is a decoded message.
type change struct {
	ID         string
	Op         string          `json:"op"`
	Schema     string          `json:"schema"`
	Table      string          `json:"table"`
	Before     map[string]any  `json:"before"`
	After      map[string]any  `json:"after"`
	Unchanged  []string        `json:"unchanged"`
	LSN        string          `json:"lsn"`
	CommitLSN  string          `json:"commit_lsn"`
	CommitTime string          `json:"commit_time"`
	XID        json.Number     `json:"xid"`
	Raw        json.RawMessage `json:"-"`
}

func decode(t testing.TB, msgs []*runtime.Message) []change {
	t.Helper()
	out := make([]change, len(msgs))
	for i, m := range msgs {
		dec := json.NewDecoder(bytes.NewReader(m.Data))
		dec.UseNumber()
		dec.DisallowUnknownFields()
		if err := dec.Decode(&out[i]); err != nil {
			t.Fatalf("message %d (%s) is not the documented JSON: %v\n%s", i, m.ID, err, m.Data)
		}
		out[i].ID, out[i].Raw = m.ID, m.Data
		if ct := m.Header.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("message %s: Content-Type %q", m.ID, ct)
		}
	}
	return out
}

func fmtSscanf(s string, hi, lo *uint32) (int, error) { return fmt.Sscanf(s, "%X/%X", hi, lo) }
