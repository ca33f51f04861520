package file_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	fileconn "github.com/vrsky/vrsky/builtin/file"
	"github.com/vrsky/vrsky/runtime"
)

func newSink(t *testing.T, cfg string) runtime.Sink {
	t.Helper()
	s, err := fileconn.Sink.NewSink(json.RawMessage(cfg), runtime.Env{Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("new sink: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func msg(id, data string, hdr ...string) *runtime.Message {
	m := &runtime.Message{ID: id, Header: runtime.Header{}, Data: []byte(data)}
	for i := 0; i+1 < len(hdr); i += 2 {
		m.Header.Set(hdr[i], hdr[i+1])
	}
	return m
}

// listFiles returns every file under dir, relative, with its content.
func listFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		b, err := os.ReadFile(p)
		out[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSinkFileNames(t *testing.T) {
	const v7 = "019ab1c2-3d4e-7f00-8000-000000000001" // a UUIDv7 of 2025-11-23T17:28:08.270Z
	for _, tc := range []struct {
		name, tmpl string
		msg        *runtime.Message
		file       string
	}{
		{"default", "", msg("m1", `{"a":1}`), "m1.json"},
		{"header and field", `{{.Header "X-Region"}}/{{.Field "order_id"}}.json`,
			msg("m2", `{"order_id":"A-17"}`, "X-Region", "eu"), "eu/A-17.json"},
		{"nested and numeric fields", `{{.Field "customer.id"}}-{{.Field "n"}}.json`,
			msg("m3", `{"customer":{"id":42},"n":1.50}`), "42-1.50.json"},
		{"time from a UUIDv7 id", `{{.Time.Format "2006-01"}}/{{.ID}}`, msg(v7, "x"), "2025-11/" + v7},
		{"time printed", `{{.Time}}.txt`, msg(v7, "x"), "20251123T172808.270Z.txt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "out") // created on demand
			cfg := fmt.Sprintf(`{"dir":%q}`, dir)
			if tc.tmpl != "" {
				cfg = fmt.Sprintf(`{"dir":%q,"filename":%q}`, dir, tc.tmpl)
			}
			if err := newSink(t, cfg).Deliver(context.Background(), tc.msg); err != nil {
				t.Fatalf("deliver: %v", err)
			}
			got := listFiles(t, dir)
			if len(got) != 1 || got[tc.file] != string(tc.msg.Data) {
				t.Fatalf("files %v, want only %s", got, tc.file)
			}
		})
	}
}

func TestSinkPermanentErrors(t *testing.T) {
	for _, tc := range []struct {
		name, tmpl string
		msg        *runtime.Message
		want       string
	}{
		{"dot-dot", `../{{.ID}}`, msg("m", "x"), "resolves outside"},
		{"dot-dot from a header", `{{.Header "X-Name"}}`, msg("m", "x", "X-Name", "a/../../etc/passwd"), "resolves outside"},
		{"absolute", `/tmp/{{.ID}}`, msg("m", "x"), "resolves outside"},
		{"empty name", `{{.Header "X-Missing"}}`, msg("m", "x"), "resolves outside"},
		{"missing field", `{{.Field "order_id"}}`, msg("m", `{"id":1}`), "no such field"},
		{"payload not JSON", `{{.Field "order_id"}}`, msg("m", `<xml/>`), "not a JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			err := newSink(t, fmt.Sprintf(`{"dir":%q,"filename":%q}`, dir, tc.tmpl)).Deliver(context.Background(), tc.msg)
			if err == nil || !runtime.IsPermanent(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("deliver = %v, want a permanent error with %q", err, tc.want)
			}
			if got := listFiles(t, dir); len(got) != 0 {
				t.Fatalf("files written: %v", got)
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "etc")); err == nil {
				t.Fatal("a directory was created outside dir")
			}
		})
	}
}

func TestSinkNoOverwrite(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := newSink(t, fmt.Sprintf(`{"dir":%q}`, dir))
	if err := s.Deliver(ctx, msg("m1", `{"v":1}`)); err != nil {
		t.Fatal(err)
	}
	// A redelivery with the same content is a success.
	if err := s.Deliver(ctx, msg("m1", `{"v":1}`)); err != nil {
		t.Fatalf("redelivery: %v", err)
	}
	// Different content under the same name is a permanent error naming the file.
	for _, data := range []string{`{"v":2}`, `{"v":1} `, `{"v"`} {
		err := s.Deliver(ctx, msg("m1", data))
		if err == nil || !runtime.IsPermanent(err) || !strings.Contains(err.Error(), "m1.json") || strings.Contains(err.Error(), dir) {
			t.Fatalf("deliver %q over another content = %v, want a permanent error naming the file relative to dir", data, err)
		}
	}
	if got := listFiles(t, dir); len(got) != 1 || got["m1.json"] != `{"v":1}` {
		t.Fatalf("files %v, want m1.json with the first content and no temp files", got)
	}
	// overwrite: true replaces it.
	o := newSink(t, fmt.Sprintf(`{"dir":%q,"overwrite":true}`, dir))
	if err := o.Deliver(ctx, msg("m1", `{"v":2}`)); err != nil {
		t.Fatal(err)
	}
	if got := listFiles(t, dir); len(got) != 1 || got["m1.json"] != `{"v":2}` {
		t.Fatalf("files %v, want m1.json replaced", got)
	}
}

func TestSinkConcurrentWritersOfOneName(t *testing.T) {
	// Many workers deliver the same message at once (redeliveries racing):
	// all succeed, one file is left, whole, and no temp file.
	dir := t.TempDir()
	s := newSink(t, fmt.Sprintf(`{"dir":%q}`, dir))
	payload := strings.Repeat("0123456789", 100_000)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() { errs <- s.Deliver(context.Background(), msg("same", payload)) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("deliver: %v", err)
		}
	}
	if got := listFiles(t, dir); len(got) != 1 || got["same.json"] != payload {
		t.Fatalf("%d files, want same.json alone and whole", len(got))
	}
}

func TestSinkConfig(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	for _, tc := range []struct {
		name, cfg, field string
	}{
		{"no dir", `{}`, "dir"},
		{"bad template", fmt.Sprintf(`{"dir":%q,"filename":"{{.ID"}`, dir), "filename"},
		{"missing dir without create_dir", fmt.Sprintf(`{"dir":%q,"create_dir":false}`, missing), "dir"},
		{"unknown field", fmt.Sprintf(`{"dir":%q,"mode":"append"}`, dir), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := fileconn.Sink.Check(context.Background(), json.RawMessage(tc.cfg), runtime.Env{})
			if err == nil {
				t.Fatal("accepted")
			}
			var fe *runtime.SpecError
			if tc.field != "" && (!errors.As(err, &fe) || fe.Field != tc.field) {
				t.Fatalf("error %v, want one on %s", err, tc.field)
			}
		})
	}
	// Without create_dir a missing directory fails the delivery, retryably
	// (someone may mount it).
	s := newSink(t, fmt.Sprintf(`{"dir":%q,"create_dir":false}`, missing))
	if err := s.Deliver(context.Background(), msg("m", "x")); err == nil || runtime.IsPermanent(err) {
		t.Fatalf("deliver into a missing dir = %v, want a retryable error", err)
	}
}

func TestSinkRefusesASymlinkOutOfDir(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dir, "escape")); err != nil {
		t.Fatal(err)
	}
	s := newSink(t, fmt.Sprintf(`{"dir":%q,"filename":"escape/{{.ID}}"}`, dir))
	if err := s.Deliver(context.Background(), msg("m", "x")); err == nil {
		t.Fatal("delivered through a symbolic link that leaves dir")
	}
	if got := listFiles(t, outside); len(got) != 0 {
		t.Fatalf("files written outside dir: %v", got)
	}
}
