package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// runConnectorCLI runs `vrsky connector ARGS` in-process against in.
func runConnectorCLI(t *testing.T, in *instance, key string, args ...string) (string, error) {
	t.Helper()
	var buf bytes.Buffer
	cmd := newConnectorCmd()
	cmd.SetArgs(append(args, "--url", in.url, "--api-key", key))
	cmd.SetOut(&buf)
	cmd.SetErr(&buf)
	err := cmd.Execute()
	return buf.String(), err
}

// TestConnectorCLI: against a real `vrsky serve` (both shapes) whose
// registry wants tenant acme's uploads signed: keygen, an unsigned push
// refused, sign, push, list, show, pull; then the uploaded step runs in an
// integration: a webhook's payload reaches an HTTP sink transformed.
func TestConnectorCLI(t *testing.T) {
	for name, shape := range shapes(t) {
		t.Run(name, func(t *testing.T) {
			be := shape(t)
			dir := t.TempDir()
			keyFile := filepath.Join(dir, "signing.key")
			in := &instance{t: t}
			// keygen needs no server.
			kg := newConnectorCmd()
			var kgOut bytes.Buffer
			kg.SetOut(&kgOut)
			kg.SetArgs([]string{"keygen", "-f", keyFile})
			if err := kg.Execute(); err != nil || !strings.Contains(kgOut.String(), "ed25519:") {
				t.Fatalf("keygen: %v %s", err, kgOut.String())
			}

			in = serveCmd(t, filepath.Join(dir, "data"), freeAddr(t), be)
			in.cmd.Env = append(in.cmd.Env, "VRSKY_REGISTRY_SIGNED_TENANTS=acme", "VRSKY_REGISTRY_TRUSTED_KEYS="+keyFile+".pub")
			if err := in.cmd.Start(); err != nil {
				t.Fatal(err)
			}
			in.waitReady()
			var tenant struct {
				APIKey string `json:"api_key"`
			}
			in.call("POST", "/api/v1/tenants", adminKey, "application/json", `{"name":"acme"}`, http.StatusCreated, &tenant)

			conn := filepath.Join(dir, "wrap")
			wasm, err := os.ReadFile("../../registry/testdata/wrap.wasm")
			if err != nil {
				t.Fatal(err)
			}
			os.MkdirAll(conn, 0o755)
			os.WriteFile(filepath.Join(conn, "wrap.wasm"), wasm, 0o644)
			os.WriteFile(filepath.Join(conn, "vrsky-connector.yaml"), []byte(`name: wrap
version: 1.0.0
kind: step
description: Wraps each payload.
tags: [json]
abi: 1
capabilities: {}
config_schema: {type: object}
example: {input: '{"a":1}', output: ['{"wrapped":{"a":1}}']}
`), 0o644)

			out, err := runConnectorCLI(t, in, tenant.APIKey, "push", conn)
			var refused *clientError
			if !errors.As(err, &refused) || refused.StatusCode != http.StatusBadRequest || refused.Code != "bad_request" || refused.Field != "signature" {
				t.Fatalf("unsigned push: %v %s", err, out)
			}
			if out, err := runConnectorCLI(t, in, tenant.APIKey, "sign", "--key", keyFile, conn); err != nil {
				t.Fatalf("sign: %v %s", err, out)
			}
			if out, err := runConnectorCLI(t, in, tenant.APIKey, "push", conn, "-o", "json"); err != nil || !strings.Contains(out, `"digest"`) {
				t.Fatalf("push: %v %s", err, out)
			}
			out, err = runConnectorCLI(t, in, tenant.APIKey, "list", "--kind", "step")
			if err != nil || !strings.Contains(out, "wrap ") || !strings.Contains(out, "uploaded") || !strings.Contains(out, "jq ") {
				t.Fatalf("list: %v\n%s", err, out)
			}
			out, err = runConnectorCLI(t, in, tenant.APIKey, "show", "wrap@1.0.0", "-o", "json")
			if err != nil || !strings.Contains(out, `"signed_by": "ed25519:`) {
				t.Fatalf("show: %v\n%s", err, out)
			}
			out, err = runConnectorCLI(t, in, tenant.APIKey, "show", "wrap")
			if err != nil || !strings.Contains(out, "ed25519:") || !strings.Contains(out, "1.0.0") || !strings.Contains(out, "uploaded") {
				t.Fatalf("show as a table: %v\n%s", err, out)
			}
			pulled := filepath.Join(dir, "pulled.wasm")
			if out, err := runConnectorCLI(t, in, tenant.APIKey, "pull", "wrap@1.0.0", "-f", pulled); err != nil {
				t.Fatalf("pull: %v %s", err, out)
			}
			if got, _ := os.ReadFile(pulled); !bytes.Equal(got, wasm) {
				t.Fatalf("pulled %d bytes, want the uploaded %d", len(got), len(wasm))
			}
			// -o FILE, pull's flag before -o meant the output format, still
			// works for now, with a warning.
			old := filepath.Join(dir, "old.wasm")
			out, err = runConnectorCLI(t, in, tenant.APIKey, "pull", "wrap@1.0.0", "-o", old)
			if got, _ := os.ReadFile(old); err != nil || !bytes.Equal(got, wasm) || !strings.Contains(out, "deprecated") {
				t.Fatalf("pull -o FILE: %v %q, %d bytes", err, out, len(got))
			}

			var mu sync.Mutex
			var got []string
			sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				mu.Lock()
				got = append(got, string(b))
				mu.Unlock()
				w.WriteHeader(http.StatusNoContent)
			}))
			t.Cleanup(sink.Close)
			spec := fmt.Sprintf("name: orders\nsource: {connector: http-webhook, config: {path: orders}}\nsteps: [{connector: wrap}]\nsinks: [{name: api, connector: http, config: {url: %q}}]\n", sink.URL)
			var created struct {
				Spec struct {
					Steps []struct{ Connector string } `json:"steps"`
				} `json:"spec"`
			}
			in.call("POST", "/api/v1/integrations", tenant.APIKey, "application/yaml", spec, http.StatusCreated, &created)
			if len(created.Spec.Steps) != 1 || created.Spec.Steps[0].Connector != "wrap@1.0.0" {
				t.Errorf("stored spec steps %+v, want wrap@1.0.0", created.Spec.Steps)
			}
			in.call("POST", "/api/v1/integrations/orders/start", tenant.APIKey, "", "", http.StatusOK, nil)
			in.call("POST", "/hooks/acme/orders", "", "application/json", `{"id":7}`, http.StatusAccepted, nil)
			waitFor(t, 60*time.Second, "the wrapped payload at the sink", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(got) > 0
			})
			mu.Lock()
			defer mu.Unlock()
			if got[0] != `{"wrapped":{"id":7}}` {
				t.Errorf("sink received %s", got[0])
			}
		})
	}
}
