package file_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	fileconn "github.com/vrsky/vrsky/builtin/file"
	"github.com/vrsky/vrsky/runtime"
	"github.com/vrsky/vrsky/runtime/runtimetest"
)

const waitLong = 30 * time.Second

// runSource runs the file source with cfg (JSON) until the test ends.
func runSource(t *testing.T, cfg string, em runtime.Emitter) {
	t.Helper()
	src, err := fileconn.Source.NewSource(json.RawMessage(cfg), runtime.Env{Tenant: "acme", Integration: "files", Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("new source: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, em) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("source Run: %v", err)
		}
	})
}

// fastCfg is a source config on dir that picks files quickly.
func fastCfg(dir string, extra string) string {
	c := fmt.Sprintf(`{"dir":%q,"stable_for":"50ms","rescan_interval":"100ms"`, dir)
	if extra != "" {
		c += "," + extra
	}
	return c + "}"
}

// drop writes a file atomically into dir (a hidden temp file, renamed), as
// well-behaved producers do.
func drop(t *testing.T, dir, name, content string) {
	t.Helper()
	tmp := filepath.Join(dir, "."+name+".part")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

func exists(path string) bool { _, err := os.Stat(path); return err == nil }

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

type want struct {
	data, ct, record, records string
}

var idPattern = regexp.MustCompile(`^[0-9a-f]{32}-[0-9]+$`)

func checkMessages(t *testing.T, got []*runtime.Message, name string, wants []want) {
	t.Helper()
	if len(got) != len(wants) {
		for _, m := range got {
			t.Logf("got %s %q", m.ID, m.Data)
		}
		t.Fatalf("got %d messages, want %d", len(got), len(wants))
	}
	for i, w := range wants {
		m := got[i]
		if string(m.Data) != w.data {
			t.Errorf("message %d: data %q, want %q", i, m.Data, w.data)
		}
		if ct := m.Header.Get("Content-Type"); ct != w.ct {
			t.Errorf("message %d: Content-Type %q, want %q", i, ct, w.ct)
		}
		if n := m.Header.Get(fileconn.HeaderFileName); n != name {
			t.Errorf("message %d: %s %q, want %q", i, fileconn.HeaderFileName, n, name)
		}
		if r := m.Header.Get(fileconn.HeaderFileRecord); r != w.record {
			t.Errorf("message %d: %s %q, want %q", i, fileconn.HeaderFileRecord, r, w.record)
		}
		if r := m.Header.Get(fileconn.HeaderFileRecords); r != w.records {
			t.Errorf("message %d: %s %q, want %q", i, fileconn.HeaderFileRecords, r, w.records)
		}
		if !idPattern.MatchString(m.ID) || !strings.HasSuffix(m.ID, "-"+w.record) {
			t.Errorf("message %d: id %q is not <file hash>-%s", i, m.ID, w.record)
		}
	}
}

func TestSourceModes(t *testing.T) {
	t.Parallel()
	const csvText = "\ufeffid,name,note\n1,ann,\"says \"\"hi\"\"\"\n2,bob,\"two\nlines\"\n3,cé,\n"
	for _, tc := range []struct {
		name, file, content, extra string
		want                       []want
	}{
		{"whole json", "a.json", `{"a":1}`, `"mode":"whole"`,
			[]want{{`{"a":1}`, "application/json", "1", ""}}},
		{"whole unknown extension", "a.bin", "\x00\x01", ``,
			[]want{{"\x00\x01", "application/octet-stream", "1", ""}}},
		{"lines", "a.log", "one\r\n\ntwo\nthree", `"mode":"lines"`,
			[]want{{"one", "text/plain; charset=utf-8", "1", ""}, {"", "text/plain; charset=utf-8", "2", ""},
				{"two", "text/plain; charset=utf-8", "3", ""}, {"three", "text/plain; charset=utf-8", "4", ""}}},
		{"lines grouped", "a.log", "one\n\"q\"\nthree\n", `"mode":"lines","records_per_message":2`,
			[]want{{`["one","\"q\""]`, "application/json", "1", "2"}, {`["three"]`, "application/json", "3", "1"}}},
		{"csv", "a.csv", csvText, `"mode":"csv"`,
			[]want{{`{"id":"1","name":"ann","note":"says \"hi\""}`, "application/json", "1", ""},
				{`{"id":"2","name":"bob","note":"two\nlines"}`, "application/json", "2", ""},
				{`{"id":"3","name":"cé","note":""}`, "application/json", "3", ""}}},
		{"csv semicolon grouped", "a.csv", "a;b\n1;2\n3;4\n5;6\n", `"mode":"csv","csv":{"delimiter":";"},"records_per_message":2`,
			[]want{{`[{"a":"1","b":"2"},{"a":"3","b":"4"}]`, "application/json", "1", "2"},
				{`[{"a":"5","b":"6"}]`, "application/json", "3", "1"}}},
		{"csv header only", "a.csv", "a,b\n", `"mode":"csv"`, nil},
		{"jsonl", "a.jsonl", "{\"a\":1}\n\n  \n[1,2]\r\n\"s\"", `"mode":"jsonl"`,
			[]want{{`{"a":1}`, "application/json", "1", ""}, {`[1,2]`, "application/json", "2", ""},
				{`"s"`, "application/json", "3", ""}}},
		{"jsonl grouped", "a.jsonl", "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n", `"mode":"jsonl","records_per_message":5`,
			[]want{{`[{"a":1},{"a":2},{"a":3}]`, "application/json", "1", "3"}}},
		{"empty file", "a.jsonl", "", `"mode":"jsonl"`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			em := &runtimetest.Emitter{}
			runSource(t, fastCfg(dir, tc.extra), em)
			drop(t, dir, tc.file, tc.content)
			runtimetest.WaitFor(t, waitLong, "the file in processed/", func() bool {
				return exists(filepath.Join(dir, "processed", tc.file))
			})
			checkMessages(t, em.Messages(), tc.file, tc.want)
			if got := readFile(t, filepath.Join(dir, "processed", tc.file)); got != tc.content {
				t.Errorf("processed file content %q, want the original %q", got, tc.content)
			}
			if exists(filepath.Join(dir, tc.file)) {
				t.Error("the file is still in the watched directory")
			}
		})
	}
}

func TestSourceBrokenRecordGoesToFailed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, file, content, extra string
		emitted                    []string // payloads emitted before the broken record
		sidecar                    string
	}{
		{"csv short row", "a.csv", "id,name\n1,a\n2,b\n3\n4,d\n", `"mode":"csv"`,
			[]string{`{"id":"1","name":"a"}`, `{"id":"2","name":"b"}`},
			"line 4: wrong number of fields: the header has 2, this row 1\nrecords emitted: 2\n"},
		{"csv long row grouped", "a.csv", "id,name\n1,a\n2,b,x\n", `"mode":"csv","records_per_message":10`,
			[]string{`[{"id":"1","name":"a"}]`},
			"line 3: wrong number of fields: the header has 2, this row 3\nrecords emitted: 1\n"},
		{"csv bare quote", "a.csv", "id,name\n1,a\"b\n", `"mode":"csv"`, nil,
			"line 2: bare \" in non-quoted-field\nrecords emitted: 0\n"},
		{"csv duplicate column", "a.csv", "id,id\n1,2\n", `"mode":"csv"`, nil,
			"line 1: duplicate column \"id\" in the header row\nrecords emitted: 0\n"},
		{"jsonl invalid line", "a.jsonl", "{\"a\":1}\n\n{\"a\":\n{\"a\":3}\n", `"mode":"jsonl"`,
			[]string{`{"a":1}`},
			"line 3: not valid JSON: unexpected end of JSON input\nrecords emitted: 1\n"},
		{"line over max_record_bytes", "a.txt", "short\n" + strings.Repeat("x", 300_000) + "\nafter\n", `"mode":"lines","max_record_bytes":1000`,
			[]string{"short"},
			"line 2: line longer than max_record_bytes (1000)\nrecords emitted: 1\n"},
		{"whole over max_file_size", "a.json", `{"big":true}`, `"max_file_size":5`, nil,
			"file is 12 bytes, over max_file_size (5)\nrecords emitted: 0\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			em := &runtimetest.Emitter{}
			runSource(t, fastCfg(dir, tc.extra), em)
			drop(t, dir, tc.file, tc.content)
			sidecar := filepath.Join(dir, "failed", tc.file+".error")
			runtimetest.WaitFor(t, waitLong, "the file in failed/", func() bool {
				return exists(filepath.Join(dir, "failed", tc.file))
			})
			if got := readFile(t, sidecar); got != tc.sidecar {
				t.Errorf("sidecar %q, want %q", got, tc.sidecar)
			}
			if got := readFile(t, filepath.Join(dir, "failed", tc.file)); got != tc.content {
				t.Error("the failed file's content changed")
			}
			msgs := em.Messages()
			if len(msgs) != len(tc.emitted) {
				t.Fatalf("%d messages emitted, want %d", len(msgs), len(tc.emitted))
			}
			for i, m := range msgs {
				if string(m.Data) != tc.emitted[i] {
					t.Errorf("message %d: %q, want %q", i, m.Data, tc.emitted[i])
				}
			}
			if exists(filepath.Join(dir, "processed", tc.file)) || exists(filepath.Join(dir, tc.file)) {
				t.Error("the file is also elsewhere")
			}
		})
	}
}

func TestSourcePicksOnlyMatchingRegularFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	em := &runtimetest.Emitter{}
	runSource(t, fastCfg(dir, `"pattern":"*.csv","mode":"lines"`), em)
	ignored := []string{"a.txt", ".hidden.csv", "b.csv.tmp", "processed/c.csv", "failed/d.csv", "sub/e.csv"}
	for _, name := range ignored {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte("ignored\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(dir, "a.txt"), filepath.Join(dir, "link.csv")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "dir.csv"), 0o755); err != nil {
		t.Fatal(err)
	}
	drop(t, dir, "z.csv", "picked\n")
	runtimetest.WaitFor(t, waitLong, "z.csv processed", func() bool { return exists(filepath.Join(dir, "processed", "z.csv")) })
	// A later file proves several rescans have passed over the others.
	time.Sleep(300 * time.Millisecond)
	drop(t, dir, "zz.csv", "picked too\n")
	runtimetest.WaitFor(t, waitLong, "zz.csv processed", func() bool { return exists(filepath.Join(dir, "processed", "zz.csv")) })
	msgs := em.Messages()
	if len(msgs) != 2 || string(msgs[0].Data) != "picked" || string(msgs[1].Data) != "picked too" {
		t.Fatalf("emitted %d messages, want exactly z.csv's and zz.csv's line", len(msgs))
	}
	for _, name := range append(ignored, "link.csv") {
		if !exists(filepath.Join(dir, name)) {
			t.Errorf("%s was moved", name)
		}
	}
}

func TestSourceWaitsUntilTheFileIsStable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	em := &runtimetest.Emitter{}
	runSource(t, fmt.Sprintf(`{"dir":%q,"stable_for":"3s","rescan_interval":"100ms","mode":"whole"}`, dir), em)
	f, err := os.Create(filepath.Join(dir, "growing.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for i := range 50 { // a write every 20ms: far less than stable_for apart
		line := fmt.Sprintf("line %d\n", i)
		want.WriteString(line)
		if _, err := f.WriteString(line); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	runtimetest.WaitFor(t, waitLong, "growing.txt processed", func() bool {
		return exists(filepath.Join(dir, "processed", "growing.txt"))
	})
	msgs := em.Messages()
	if len(msgs) != 1 || string(msgs[0].Data) != want.String() {
		t.Fatalf("got %d messages, want one with the complete file", len(msgs))
	}
}

// failingEmitter fails its first calls, then records.
type failingEmitter struct {
	runtimetest.Emitter
	failures atomic.Int32
	err      error
}

func (f *failingEmitter) EmitBatch(ctx context.Context, msgs []*runtime.Message) error {
	if f.failures.Add(-1) >= 0 {
		return f.err
	}
	return f.Emitter.EmitBatch(ctx, msgs)
}

func TestSourceEmitFailures(t *testing.T) {
	t.Parallel()
	t.Run("transient failures are retried with the same ids", func(t *testing.T) {
		dir := t.TempDir()
		em := &failingEmitter{err: errors.New("nats: timeout")}
		em.failures.Store(3)
		runSource(t, fastCfg(dir, `"mode":"lines"`), em)
		drop(t, dir, "a.txt", "1\n2\n3\n")
		runtimetest.WaitFor(t, waitLong, "a.txt processed", func() bool { return exists(filepath.Join(dir, "processed", "a.txt")) })
		if n := len(em.Messages()); n != 3 {
			t.Fatalf("%d messages, want 3", n)
		}
	})
	t.Run("a permanent failure moves the file to failed", func(t *testing.T) {
		dir := t.TempDir()
		em := &failingEmitter{err: runtime.Permanent(errors.New("payload refused"))}
		em.failures.Store(1)
		runSource(t, fastCfg(dir, `"mode":"lines"`), em)
		drop(t, dir, "a.txt", "1\n2\n")
		runtimetest.WaitFor(t, waitLong, "a.txt failed", func() bool { return exists(filepath.Join(dir, "failed", "a.txt")) })
		if got, want := readFile(t, filepath.Join(dir, "failed", "a.txt.error")), "emit: payload refused\nrecords emitted: 0\n"; got != want {
			t.Errorf("sidecar %q, want %q", got, want)
		}
	})
}

func TestSourceSameFileSameIDs(t *testing.T) {
	t.Parallel()
	// The ids come from the file's name, size and mtime: the same file
	// dropped again (say, after a crash before the move) gets the same
	// ids, which JetStream's dedup window drops.
	var ids [2][]string
	mtime := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range ids {
		dir := t.TempDir()
		em := &runtimetest.Emitter{}
		runSource(t, fastCfg(dir, `"mode":"lines"`), em)
		tmp := filepath.Join(dir, ".a.part")
		if err := os.WriteFile(tmp, []byte("x\ny\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(tmp, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "a.txt")); err != nil {
			t.Fatal(err)
		}
		runtimetest.WaitFor(t, waitLong, "a.txt processed", func() bool { return exists(filepath.Join(dir, "processed", "a.txt")) })
		for _, m := range em.Messages() {
			ids[i] = append(ids[i], m.ID)
		}
	}
	if len(ids[0]) != 2 || strings.Join(ids[0], " ") != strings.Join(ids[1], " ") {
		t.Fatalf("ids differ between two runs over the same file: %v and %v", ids[0], ids[1])
	}
}

func TestSourceProcessedNameTaken(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "done"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "done", "a.txt"), []byte("older"), 0o644); err != nil {
		t.Fatal(err)
	}
	em := &runtimetest.Emitter{}
	runSource(t, fastCfg(dir, `"mode":"lines","processed_dir":"done"`), em)
	drop(t, dir, "a.txt", "new\n")
	var moved string
	runtimetest.WaitFor(t, waitLong, "a.txt moved", func() bool {
		m, _ := filepath.Glob(filepath.Join(dir, "done", "a.txt.*"))
		if len(m) == 1 {
			moved = m[0]
		}
		return moved != ""
	})
	if readFile(t, filepath.Join(dir, "done", "a.txt")) != "older" || readFile(t, moved) != "new\n" {
		t.Fatal("the older processed file was overwritten")
	}
}

func TestSourceConfig(t *testing.T) {
	dir := t.TempDir()
	notDir := filepath.Join(dir, "f")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cat, err := runtime.NewCatalog(fileconn.Source, renamed(fileconn.Sink, "file-out"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, cfg string
		field     string // the field the error names; "" = valid
		check     bool   // the error comes from Check (the world), not the schema
	}{
		{"minimal", fmt.Sprintf(`{"dir":%q}`, dir), "", false},
		{"everything", fmt.Sprintf(`{"dir":%q,"pattern":"*.csv","mode":"csv","csv":{"delimiter":"\t"},"stable_for":"2s","rescan_interval":"1m","processed_dir":"ok","failed_dir":"/tmp/ko","records_per_message":500,"max_file_size":10,"max_record_bytes":10}`, dir), "", false},
		{"no dir", `{}`, "source.config.dir", false},
		{"unknown field", fmt.Sprintf(`{"dir":%q,"recursive":true}`, dir), "source.config.recursive", false},
		{"bad mode", fmt.Sprintf(`{"dir":%q,"mode":"xml"}`, dir), "source.config.mode", false},
		{"bad duration", fmt.Sprintf(`{"dir":%q,"stable_for":"soon"}`, dir), "source.config.stable_for", false},
		{"records_per_message zero", fmt.Sprintf(`{"dir":%q,"records_per_message":0}`, dir), "source.config.records_per_message", false},
		{"bad glob", fmt.Sprintf(`{"dir":%q,"pattern":"[a"}`, dir), "source.config.pattern", true},
		{"two-character delimiter", fmt.Sprintf(`{"dir":%q,"csv":{"delimiter":"ab"}}`, dir), "source.config.csv.delimiter", true},
		{"quote delimiter", fmt.Sprintf(`{"dir":%q,"csv":{"delimiter":"\""}}`, dir), "source.config.csv.delimiter", true},
		{"processed is the dir", fmt.Sprintf(`{"dir":%q,"processed_dir":"."}`, dir), "source.config.processed_dir", true},
		{"missing dir", fmt.Sprintf(`{"dir":%q}`, filepath.Join(dir, "nope")), "source.config.dir", true},
		{"dir is a file", fmt.Sprintf(`{"dir":%q}`, notDir), "source.config.dir", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := fmt.Sprintf(`{"name":"x","source":{"connector":"file","config":%s},"sinks":[{"name":"out","connector":"file-out","config":{"dir":%q}}]}`, tc.cfg, dir)
			s, err := runtime.ParseSpec([]byte(spec), cat)
			if err == nil && tc.check {
				err = fileconn.Source.Check(context.Background(), s.Source.Config, runtime.Env{})
				var fe *runtime.SpecError
				if errors.As(err, &fe) {
					fe.Field = "source.config." + fe.Field
				}
			}
			if tc.field == "" {
				if err != nil {
					t.Fatalf("valid config refused: %v", err)
				}
				return
			}
			var fe *runtime.SpecError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v, want a SpecError on %s", err, tc.field)
			}
			if fe.Field != tc.field {
				t.Fatalf("error on %q (%s), want on %q", fe.Field, fe.Reason, tc.field)
			}
		})
	}
}

func TestSourceMissingDirEndsRun(t *testing.T) {
	src, err := fileconn.Source.NewSource(json.RawMessage(`{"dir":"/nonexistent/vrsky-test"}`), runtime.Env{})
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Run(context.Background(), &runtimetest.Emitter{}); err == nil || !strings.Contains(err.Error(), "/nonexistent/vrsky-test") {
		t.Fatalf("Run = %v, want an error naming the directory", err)
	}
}

// renamed returns c under another name: the catalogue holds one connector
// per name, and the source and the sink are both called "file".
func renamed(c runtime.Connector, name string) runtime.Connector {
	c.Name = name
	return c
}

// testLogger shows the connector's log with the test's output.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}
