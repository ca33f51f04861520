package file_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	fileconn "github.com/vrsky/vrsky/builtin/file"
	"github.com/vrsky/vrsky/runtime"
)

// TestFilenameTemplateRefused: a template that could loop, pad, recurse,
// print the data or call anything but the documented fields and slice /
// urlquery is refused when the config is checked, naming the field; so is
// one over the length limit.
func TestFilenameTemplateRefused(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, tmpl, why string // why: a word the reason must hold
	}{
		{"nested range", `{{range 100000}}{{range 100000}}{{range 100000}}x{{end}}{{end}}{{end}}`, "range"},
		{"range over a field", `{{range .ID}}x{{end}}`, "range"},
		{"with", `{{with .ID}}{{.}}{{end}}`, "with"},
		{"if", `{{if .ID}}x{{end}}`, "if"},
		{"template", `{{template "filename" .}}`, "template"},
		{"define", `{{define "x"}}{{.ID}}{{end}}{{.ID}}`, "define"},
		{"block", `{{block "x" .}}{{.ID}}{{end}}`, "define"},
		{"printf dumping the data", `{{printf "%s" .}}`, "printf"},
		{"printf padding", `{{printf "%0999999999d" 1}}`, "printf"},
		{"print", `{{print .ID}}`, "print"},
		{"piped into printf", `{{.ID | printf "%s%s%s"}}`, "printf"},
		{"printf inside an allowed function", `{{urlquery (printf "%099999999d" 1)}}`, "printf"},
		{"len", `{{len .ID}}`, "len"},
		{"index", `{{index .ID 0}}`, "index"},
		{"call", `{{call .ID}}`, "call"},
		{"html", `{{html .ID}}`, "html"},
		{"js", `{{js .ID}}`, "js"},
		{"eq", `{{eq .ID "x"}}`, "eq"},
		{"bare dot", `{{.}}`, "not allowed"},
		{"dollar", `{{$}}`, "not allowed"},
		{"dollar field", `{{$.ID}}`, "not allowed"},
		{"variable", `{{$x := .ID}}{{$x}}`, "variables"},
		{"chain", `{{(.Time).Unix}}`, "not allowed"},
		{"number", `{{1}}`, "not allowed"},
		{"bool", `{{true}}`, "not allowed"},
		{"unknown method", `{{.Msg}}`, ".Msg"},
		{"time method not listed", `{{.Time.AddDate 1000 0 0}}`, ".Time.AddDate"},
		{"time location", `{{.Time.Location}}`, ".Time.Location"},
		{"header without its argument", `{{.Header}}`, "argument"},
		{"id with an argument", `{{.ID "x"}}`, "argument"},
		{"header of a field", `{{.Header .ID}}`, "quoted string"},
		{"format of a header", `{{.Time.Format (.Header "X")}}`, "quoted string"},
		{"piped into a method", `{{"X" | .Header}}`, "piped"},
		{"method with arguments as an operand", `{{urlquery .Header "X"}}`, "parentheses"},
		{"too long", strings.Repeat("a", fileconn.MaxFilenameTemplate+1), "limit"},
		{"not a template", `{{.ID`, "not a valid template"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := json.RawMessage(fmt.Sprintf(`{"dir":%q,"filename":%q}`, dir, tc.tmpl))
			for what, err := range map[string]error{
				"Check":   fileconn.Sink.Check(context.Background(), cfg, runtime.Env{}),
				"NewSink": newSinkErr(cfg),
			} {
				var se *runtime.SpecError
				if !errors.As(err, &se) || se.Field != "filename" || !strings.Contains(se.Reason, tc.why) {
					t.Errorf("%s(%s) = %v, want a SpecError on filename saying %q", what, tc.tmpl, err, tc.why)
				}
			}
		})
	}
}

func newSinkErr(cfg json.RawMessage) error {
	s, err := fileconn.Sink.NewSink(cfg, runtime.Env{Logger: slog.New(slog.DiscardHandler)})
	if err == nil {
		_ = s.Close()
	}
	return err
}

// TestFilenameTemplateAllowed: what a file name needs passes, and renders.
func TestFilenameTemplateAllowed(t *testing.T) {
	const v7 = "019ab1c2-3d4e-7f00-8000-000000000001"
	for _, tc := range []struct {
		name, tmpl string
		msg        *runtime.Message
		file       string
	}{
		{"slice of the id", `{{slice .ID 0 2}}/{{.ID}}`, msg("ab12", "x"), "ab/ab12"},
		{"urlquery of a header", `{{urlquery (.Header "X-Customer")}}.txt`, msg("m", "x", "X-Customer", "a/b c"), "a%2Fb+c.txt"},
		{"piped into urlquery", `{{.Header "X-Customer" | urlquery}}.txt`, msg("m", "x", "X-Customer", "a/b"), "a%2Fb.txt"},
		{"a quoted string", `{{"{{"}}{{.ID}}`, msg("m", "x"), "{{m"},
		{"comment and trim", `{{/* by id */}}{{- .ID -}}`, msg("m", "x"), "m"},
		{"time methods", `{{.Time.Year}}/{{.Time.Month}}/{{.Time.Unix}}`, msg(v7, "x"), "2025/November/1763918888"},
		{"field", `{{.Field "a.b"}}.json`, msg("m", `{"a":{"b":7}}`), "7.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := newSink(t, fmt.Sprintf(`{"dir":%q,"filename":%q}`, dir, tc.tmpl)).Deliver(context.Background(), tc.msg); err != nil {
				t.Fatalf("deliver: %v", err)
			}
			if got := listFiles(t, dir); len(got) != 1 || got[tc.file] != string(tc.msg.Data) {
				t.Fatalf("files %v, want only %s", got, tc.file)
			}
		})
	}
}

// TestFilenameOutputBound: a template that passes the check cannot
// produce a name over MaxFilenameBytes: the run stops there, with a
// permanent error, and writes nothing.
func TestFilenameOutputBound(t *testing.T) {
	const limit = fileconn.MaxFilenameBytes
	// pathOf returns a local path of n bytes in components of at most 200.
	pathOf := func(n int) string {
		var b strings.Builder
		for b.Len() < n {
			if b.Len() > 0 && b.Len()%201 == 200 {
				b.WriteByte('/')
			} else {
				b.WriteByte('a')
			}
		}
		return b.String()
	}
	big := strings.Repeat("x", 4*limit)
	for _, tc := range []struct {
		name, tmpl string
		msg        *runtime.Message
		want       int // the name's length; 0: refused
	}{
		{"header at the limit", `{{.Header "X"}}`, msg("m", "x", "X", pathOf(limit)), limit},
		{"header one under", `{{.Header "X"}}`, msg("m", "x", "X", pathOf(limit-1)), limit - 1},
		{"header one over", `{{.Header "X"}}`, msg("m", "x", "X", pathOf(limit+1)), 0},
		{"a 1 MiB header", `{{.Header "X"}}`, msg("m", "x", "X", strings.Repeat("y", 1<<20)), 0},
		{"a field", `{{.Field "big"}}`, msg("m", fmt.Sprintf(`{"big":%q}`, big)), 0},
		{"a field as JSON", `{{.Field "o"}}`, msg("m", fmt.Sprintf(`{"o":{"a":%q}}`, big)), 0},
		{"urlquery tripling", `{{urlquery (.Header "X")}}`, msg("m", "x", "X", strings.Repeat("/", limit/2)), 0},
		{"the id many times", strings.Repeat(`{{.ID}}`, 100), msg(strings.Repeat("i", 20), "x"), 0},
		{"text past the limit", strings.Repeat("t", limit-10) + `{{.ID}}`, msg(strings.Repeat("m", 11), "x"), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := newSink(t, fmt.Sprintf(`{"dir":%q,"filename":%q}`, dir, tc.tmpl)) // the template passes the check
			err := s.Deliver(context.Background(), tc.msg)
			got := listFiles(t, dir)
			if tc.want == 0 {
				if err == nil || !runtime.IsPermanent(err) || !strings.Contains(err.Error(), fmt.Sprintf("more than %d bytes", limit)) {
					t.Fatalf("deliver = %v, want a permanent error over the bound", err)
				}
				if len(got) != 0 {
					t.Fatalf("files written: %d", len(got))
				}
				return
			}
			if err != nil {
				t.Fatalf("deliver: %v", err)
			}
			for name := range got {
				if len(name) != tc.want {
					t.Fatalf("name of %d bytes, want %d", len(name), tc.want)
				}
			}
		})
	}
}

// TestSinkErrorsHaveNoServerPath: a confined sink's errors, at check time
// and at delivery, name files relative to the tenant's dir and never hold
// the server's paths (the files root, the tenant's area, a symbolic link's
// target).
func TestSinkErrorsHaveNoServerPath(t *testing.T) {
	base := t.TempDir()
	root, outside := filepath.Join(base, "files"), filepath.Join(base, "outside")
	for _, d := range []string{filepath.Join(root, "acme", "out"), outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(root, "acme", "out", "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "acme", "afile"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, sink := fileconn.Confined(root)
	acme := runtime.Env{Tenant: "acme", Integration: "out", Logger: slog.New(slog.DiscardHandler)}
	ctx := context.Background()
	deliver := func(cfg string, m *runtime.Message) error {
		s, err := sink.NewSink(json.RawMessage(cfg), acme)
		if err != nil {
			return err
		}
		defer s.Close()
		return s.Deliver(ctx, m)
	}
	if err := deliver(`{"dir":"out"}`, msg("m1", "one")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		err  func() error
		want string
	}{
		{"other content exists", func() error { return deliver(`{"dir":"out"}`, msg("m1", "two")) }, "m1.json already exists"},
		{"resolves outside", func() error {
			return deliver(`{"dir":"out","filename":"{{.Header \"X\"}}"}`, msg("m", "x", "X", "../../../etc/passwd"))
		}, "resolves outside dir"},
		{"through a symbolic link", func() error { return deliver(`{"dir":"out","filename":"escape/{{.ID}}"}`, msg("m", "x")) }, "escape"},
		{"a component too long", func() error {
			return deliver(`{"dir":"out","filename":"{{.Header \"X\"}}"}`, msg("m", "x", "X", strings.Repeat("n", 300)))
		}, "file sink"},
		{"name over the bound", func() error {
			return deliver(`{"dir":"out","filename":"{{.Header \"X\"}}"}`, msg("m", "x", "X", strings.Repeat("n", 2000)))
		}, "more than"},
		{"dir is a file", func() error { return deliver(`{"dir":"afile/out"}`, msg("m", "x")) }, "create dir"},
		{"missing dir, no create_dir", func() error { return deliver(`{"dir":"missing","create_dir":false}`, msg("m", "x")) }, "open dir"},
		{"check: missing dir, no create_dir", func() error {
			return sink.Check(ctx, json.RawMessage(`{"dir":"missing","create_dir":false}`), acme)
		}, "no such file"},
		{"check: dir is a file", func() error {
			return sink.Check(ctx, json.RawMessage(`{"dir":"afile","create_dir":false}`), acme)
		}, "not a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.err()
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if strings.Contains(msg, base) || strings.Contains(msg, root) || strings.Contains(msg, outside) {
				t.Fatalf("error holds a server path: %s", msg)
			}
			if !strings.Contains(msg, tc.want) {
				t.Fatalf("error %q does not say %q", msg, tc.want)
			}
		})
	}
	if got := listFiles(t, outside); len(got) != 0 {
		t.Fatalf("files written outside dir: %v", got)
	}
}
