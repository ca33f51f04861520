package file_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	fileconn "github.com/vrsky/vrsky/builtin/file"
	"github.com/vrsky/vrsky/runtime"
	"github.com/vrsky/vrsky/runtime/runtimetest"
)

func TestConfinedPaths(t *testing.T) {
	root := t.TempDir()
	src, sink := fileconn.Confined(root)
	acme := runtime.Env{Tenant: "acme", Integration: "in", Logger: slog.New(slog.DiscardHandler)}
	ctx := context.Background()

	for _, tc := range []struct {
		name  string
		conn  runtime.Connector
		cfg   string
		field string
	}{
		{"absolute source dir", src, `{"dir":"/etc"}`, "dir"},
		{"climbing source dir", src, `{"dir":"../other/in"}`, "dir"},
		{"absolute processed_dir", src, `{"dir":"in","processed_dir":"/tmp/x"}`, "processed_dir"},
		{"climbing failed_dir", src, `{"dir":"in","failed_dir":"../../b"}`, "failed_dir"},
		{"absolute sink dir", sink, `{"dir":"/var/lib"}`, "dir"},
		{"climbing sink dir", sink, `{"dir":"out/../../b"}`, "dir"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.conn.Check(ctx, json.RawMessage(tc.cfg), acme)
			var se *runtime.SpecError
			if !errors.As(err, &se) || se.Field != tc.field {
				t.Fatalf("Check(%s) = %v, want a SpecError on %q", tc.cfg, err, tc.field)
			}
		})
	}

	// A relative dir lives in the tenant's area: Check creates the
	// source's folder, and the sink writes there.
	if err := src.Check(ctx, json.RawMessage(`{"dir":"in","mode":"lines"}`), acme); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(root, "acme", "in")); err != nil || !fi.IsDir() {
		t.Fatalf("the tenant's source folder was not created: %v", err)
	}
	s, err := sink.NewSink(json.RawMessage(`{"dir":"out"}`), acme)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Deliver(ctx, &runtime.Message{ID: "m1", Header: runtime.Header{}, Data: []byte(`{"a":1}`)}); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "acme", "out", "m1.json")); err != nil || string(b) != `{"a":1}` {
		t.Fatalf("the sink's file is not in the tenant's area: %q, %v", b, err)
	}

	// The source reads the tenant's folder, not a folder of the same name
	// elsewhere.
	source, err := src.NewSource(json.RawMessage(`{"dir":"in","mode":"lines","stable_for":"50ms","rescan_interval":"100ms"}`), acme)
	if err != nil {
		t.Fatal(err)
	}
	em := &runtimetest.Emitter{}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- source.Run(rctx, em) }()
	if err := os.WriteFile(filepath.Join(root, "acme", "in", "a.txt"), []byte("one\ntwo\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	runtimetest.WaitFor(t, 20*time.Second, "two lines from the tenant's folder", func() bool { return len(em.Messages()) == 2 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// TestConfinedSourceErrorsNameNoServerPath: what a tenant sees of a
// confined source's failure (its integration's status) names the folder as
// the tenant wrote it, never the server's root.
func TestConfinedSourceErrorsNameNoServerPath(t *testing.T) {
	root := t.TempDir()
	src, _ := fileconn.Confined(root)
	acme := runtime.Env{Tenant: "acme", Integration: "in", Logger: slog.New(slog.DiscardHandler)}
	s, err := src.NewSource(json.RawMessage(`{"dir":"gone"}`), acme) // never created: no Check ran
	if err != nil {
		t.Fatal(err)
	}
	err = s.Run(context.Background(), &runtimetest.Emitter{})
	if err == nil {
		t.Fatal("Run of a missing folder succeeded")
	}
	if msg := err.Error(); strings.Contains(msg, root) || !strings.Contains(msg, "gone") {
		t.Fatalf("Run = %q: want the folder named as the tenant wrote it, without %s", msg, root)
	}
	var se *runtime.SpecError
	if !errors.As(err, &se) || se.Field != "dir" {
		t.Fatalf("Run = %v: the SpecError on dir is lost", err)
	}
}
