package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vrsky/vrsky/host"
	"github.com/vrsky/vrsky/platform/blob"
	"github.com/vrsky/vrsky/platform/natsx/natsxtest"
	"github.com/vrsky/vrsky/runtime"
)

// TestReadmeSpecsParse keeps the README and docs/ true: every integration
// spec in a yaml block of the README or a page of docs/ parses against the
// catalogue vrsky serve builds (the built-ins and the shipped Wasm steps),
// and the README's one deliberate mistake is refused on the field it names.
func TestReadmeSpecsParse(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	pages, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	var docs []byte
	for _, p := range pages {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(append(docs, b...), '\n')
	}
	conn := natsxtest.Start(t)
	ctx := context.Background()
	bs, err := blob.NewNATS(ctx, conn.JS, "vrsky-objects", 1)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := host.New(ctx, host.Config{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Close(context.Background()) })
	cat, err := newCatalog(ctx, t.TempDir(), rt, host.Env{Messaging: host.NATSMessaging{NC: conn.NC}, Objects: bs}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}

	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(readme)+string(docs), -1)
	// The getting started writes its specs with the shell, filling in
	// the receivers' addresses.
	heredocs := regexp.MustCompile("(?s)cat > [a-z]+\\.yaml <<EOF\n(.*?)\nEOF\n").FindAllStringSubmatch(string(readme), -1)
	if len(blocks) < 3 || len(heredocs) < 2 {
		t.Fatalf("found %d yaml blocks in the README and docs/ and %d `cat > x.yaml <<EOF` ones in the README; the patterns no longer match it", len(blocks), len(heredocs))
	}
	for _, h := range heredocs {
		blocks = append(blocks, []string{h[0], os.Expand(h[1], func(name string) string {
			return map[string]string{"SINK": "127.0.0.1:9000", "BIG": "127.0.0.1:9001"}[name]
		})})
	}
	for _, b := range blocks {
		doc := b[1]
		if strings.Contains(doc, "http:///") {
			t.Fatalf("a README spec names a variable the test does not fill in:\n%s", b[0])
		}
		name := strings.SplitN(strings.TrimSpace(doc), "\n", 2)[0]
		t.Run(name, func(t *testing.T) {
			if _, err := runtime.ParseSpec([]byte(doc), cat); err != nil {
				t.Fatalf("the README's spec does not parse: %v\n%s", err, doc)
			}
		})
	}
	// The README shows this refusal, with this field.
	_, err = runtime.ParseSpec([]byte("name: x\nsource: {connector: http-webhook, config: {path: x}}\nsinks: [{name: a, connector: http, config: {}}]"), cat)
	if se, ok := err.(*runtime.SpecError); !ok || se.Field != "sinks[0].config.url" {
		t.Fatalf("the README's bad spec: %v, want a refusal on sinks[0].config.url", err)
	}
}
