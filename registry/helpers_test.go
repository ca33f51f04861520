package registry_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	httpconn "github.com/vrsky/vrsky/builtin/http"
	"github.com/vrsky/vrsky/host"
	"github.com/vrsky/vrsky/host/hosttest"
	"github.com/vrsky/vrsky/internal/testenv/pgtest"
	"github.com/vrsky/vrsky/internal/testenv/s3test"
	"github.com/vrsky/vrsky/platform/blob"
	"github.com/vrsky/vrsky/platform/blob/s3blob"
	"github.com/vrsky/vrsky/platform/natsx/natsxtest"
	"github.com/vrsky/vrsky/platform/store"
	"github.com/vrsky/vrsky/platform/store/pgstore"
	"github.com/vrsky/vrsky/registry"
	"github.com/vrsky/vrsky/runtime"
	wasmconnectors "github.com/vrsky/vrsky/wasm-connectors"
)

// backend opens a control-plane store and an object store for t.
type backend struct {
	name string
	open func(t testing.TB) (registry.Store, blob.Store)
}

// natsBackend is the embedded default: NATS KV and the NATS Object Store
// on a real embedded server.
var natsBackend = backend{"nats", func(t testing.TB) (registry.Store, blob.Store) {
	conn := natsxtest.Start(t)
	ctx := context.Background()
	st, err := store.NewNATS(ctx, conn.JS, conn.Replicas)
	if err != nil {
		t.Fatalf("store: %v", err)
	}
	bs, err := blob.NewNATS(ctx, conn.JS, "vrsky-objects", conn.Replicas)
	if err != nil {
		t.Fatalf("blob: %v", err)
	}
	return st, bs
}}

// prodBackend is PostgreSQL and an S3 gateway (versitygw).
var prodBackend = backend{"postgres+s3", func(t testing.TB) (registry.Store, blob.Store) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := pgstore.Open(ctx, pgtest.New(t))
	if err != nil {
		t.Fatalf("pgstore: %v", err)
	}
	t.Cleanup(st.Close)
	c := s3test.New(t)
	bs, err := s3blob.Open(ctx, s3blob.Config{Endpoint: c.Endpoint, Bucket: c.Bucket, Region: c.Region, UsePathStyle: true,
		AccessKeyID: c.AccessKey, SecretAccessKey: c.SecretKey})
	if err != nil {
		t.Fatalf("s3blob: %v", err)
	}
	return st, bs
}}

// env is a registry on real stores, a real host and a catalogue of the
// built-in http connectors and the shipped Wasm modules.
type env struct {
	t     testing.TB
	ctx   context.Context
	store registry.Store
	blobs blob.Store
	host  *host.Runtime
	cat   *runtime.Catalog
	reg   *registry.Registry
}

func newEnv(t testing.TB, b backend, tune ...func(*registry.Config)) *env {
	t.Helper()
	st, bs := b.open(t)
	ctx := context.Background()
	for _, name := range []string{"acme", "globex"} {
		if _, err := st.(store.Store).CreateTenant(ctx, store.Tenant{Name: name}); err != nil {
			t.Fatalf("tenant %s: %v", name, err)
		}
	}
	rt := hosttest.Runtime(t, host.Config{})
	cat, shipped := catalogue(t, rt)
	cfg := registry.Config{Store: st, Blobs: bs, Host: rt, Catalog: cat, Shipped: shipped,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, f := range tune {
		f(&cfg)
	}
	reg, err := registry.New(cfg)
	if err != nil {
		t.Fatalf("registry.New: %v", err)
	}
	t.Cleanup(func() { reg.Close(context.Background()) })
	return &env{t: t, ctx: ctx, store: st, blobs: bs, host: rt, cat: cat, reg: reg}
}

// catalogue is what `vrsky serve` registers: the built-in http connectors
// and every shipped Wasm module (compiled on first use).
func catalogue(t testing.TB, rt *host.Runtime) (*runtime.Catalog, map[string]registry.Shipped) {
	t.Helper()
	cat, err := runtime.NewCatalog(httpconn.Webhook, httpconn.Sink)
	if err != nil {
		t.Fatal(err)
	}
	shipped := map[string]registry.Shipped{}
	for _, b := range wasmconnectors.List() {
		sh := registry.Shipped{Manifest: b.Manifest}
		if b.Err == nil {
			sh.Digest, sh.Size, sh.Wasm = b.Digest, b.Size, b.Wasm
		}
		shipped[b.Name] = sh
		c, err := registry.ShippedStep(context.Background(), b.Manifest, b.Wasm, rt, host.Env{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := cat.Register(c); err != nil {
			t.Fatal(err)
		}
	}
	return cat, shipped
}

// fixture reads a module from testdata.
func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("fixture %s (go run ./registry/testdata/mkfixtures): %v", name, err)
	}
	return b
}

// manifest is a good manifest for wrap.wasm; edits are "key: value" YAML
// lines that replace the line with the same key, or are appended.
func manifest(name, version string, edits ...string) []byte {
	lines := []string{
		"name: " + name,
		"version: " + version,
		"kind: step",
		"category: converter",
		`description: 'Wraps each payload P as {"wrapped": P}.'`,
		"author: Test Author <t@example.com>",
		"license: Apache-2.0",
		"tags: [json, test]",
		"abi: 1",
		"capabilities: {}",
		"visibility: public",
		"config_schema: {type: object, additionalProperties: false, properties: {note: {type: string, description: A note.}}}",
	}
	for _, e := range edits {
		key, _, _ := strings.Cut(e, ":")
		done := false
		for i, l := range lines {
			if strings.HasPrefix(l, key+":") {
				lines[i], done = e, true
			}
		}
		if !done {
			lines = append(lines, e)
		}
	}
	return []byte(strings.Join(lines, "\n") + "\n")
}

// publish uploads and fails the test on error.
func (e *env) publish(tenant string, up registry.Upload) store.ConnectorVersion {
	e.t.Helper()
	cv, err := e.reg.Publish(e.ctx, tenant, up)
	if err != nil {
		e.t.Fatalf("Publish %s: %v", tenant, err)
	}
	return cv
}

// refusal asserts err is a *registry.Refusal of rule.
func refusal(t *testing.T, err error, rule string) *registry.Refusal {
	t.Helper()
	var r *registry.Refusal
	if !errors.As(err, &r) {
		t.Fatalf("want a refusal of rule %s, got %v", rule, err)
	}
	if r.Rule != rule {
		t.Fatalf("want rule %s, got %s (%s)", rule, r.Rule, r.Reason)
	}
	return r
}

func keyPair(t *testing.T) (ed25519.PrivateKey, ed25519.PublicKey) {
	t.Helper()
	privPEM, pubPEM, err := registry.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	priv, err := registry.ParsePrivateKey(privPEM)
	if err != nil {
		t.Fatal(err)
	}
	pubs, err := registry.ParsePublicKeys(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	return priv, pubs[0]
}
