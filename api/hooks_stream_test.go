package api

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/vrsky/vrsky/platform/blob"
	"github.com/vrsky/vrsky/runtime"
)

// chunked hides a reader's length, so the client sends it chunked.
type chunked struct{ io.Reader }

// TestStreamedHookBodies: large webhook bodies are streamed into the
// object store as they arrive, and still checked: signature, size limit,
// nothing stored for a refused one.
func TestStreamedHookBodies(t *testing.T) {
	t.Setenv("VRSKY_SECRET_ACME__HOOK", "s3cret")
	var bs blob.Store
	e := newTestEnvWith(t, func(c *runtime.Config) {
		var err error
		if bs, err = blob.NewNATS(context.Background(), c.Conn.JS, "vrsky-objects", 1); err != nil {
			t.Fatal(err)
		}
		c.Blobs = bs
	}, func(c *Config) { c.HookBodyLimit = 4 << 20 })
	base := e.listen(t)

	var mu sync.Mutex
	got := map[string][]byte{}
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		got[r.Header.Get("Idempotency-Key")] = b
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(sink.Close)
	res, body := call(t, "POST", base+"/api/v1/tenants", testAdminKey, "application/json", []byte(`{"name":"acme"}`))
	var tenant struct {
		APIKey string `json:"api_key"`
	}
	if res.StatusCode != http.StatusCreated || json.Unmarshal(body, &tenant) != nil {
		t.Fatalf("create tenant: %d %s", res.StatusCode, body)
	}
	key := tenant.APIKey
	spec := `name: big
source: {connector: http-webhook, config: {path: big, secret_env: VRSKY_SECRET_ACME__HOOK}}
sinks: [{name: out, connector: http, config: {url: "` + sink.URL + `"}}]
`
	if res, body := call(t, "POST", base+"/api/v1/integrations", key, "application/x-yaml", []byte(spec)); res.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d %s", res.StatusCode, body)
	}
	if res, body := call(t, "POST", base+"/api/v1/integrations/big/start", key, "", nil); res.StatusCode != http.StatusOK {
		t.Fatalf("start: %d %s", res.StatusCode, body)
	}

	sign := func(b []byte) string {
		m := hmac.New(sha256.New, []byte("s3cret"))
		m.Write(b)
		return "sha256=" + hex.EncodeToString(m.Sum(nil))
	}
	post := func(body io.Reader, sig, idem string) (int, string, string) {
		req, _ := http.NewRequest("POST", base+"/hooks/acme/big", body)
		if idem != "" {
			req.Header.Set("Idempotency-Key", idem)
		}
		req.Header.Set("Content-Type", "application/octet-stream")
		req.Header.Set("X-Hub-Signature-256", sig)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		var ans struct {
			ID    string `json:"id"`
			Error struct {
				Code string `json:"code"`
			} `json:"error"`
		}
		_ = json.Unmarshal(b, &ans)
		return res.StatusCode, ans.ID, ans.Error.Code
	}

	big := bytes.Repeat([]byte("0123456789abcdef"), 3<<16) // 3 MiB: streamed, claim-checked
	for _, tc := range []struct {
		name string
		body func() io.Reader
	}{
		{"with a length", func() io.Reader { return bytes.NewReader(big) }},
		{"chunked", func() io.Reader { return chunked{bytes.NewReader(big)} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, id, _ := post(tc.body(), sign(big), "")
			if status != http.StatusAccepted || id == "" {
				t.Fatalf("signed 3 MiB body: %d", status)
			}
			deadline := time.Now().Add(30 * time.Second)
			for {
				mu.Lock()
				b, ok := got[id]
				mu.Unlock()
				if ok {
					if !bytes.Equal(b, big) {
						t.Fatalf("the sink got %d bytes, want the 3 MiB body", len(b))
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the 3 MiB body never reached the sink")
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}

	for i, tc := range []struct {
		name   string
		body   io.Reader
		sig    string
		status int
		code   string
	}{
		{"wrong signature", bytes.NewReader(big), sign(append([]byte("x"), big...)), http.StatusUnauthorized, "bad_signature"},
		{"wrong signature, chunked", chunked{bytes.NewReader(big)}, sign(nil), http.StatusUnauthorized, "bad_signature"},
		{"over the limit, chunked", chunked{bytes.NewReader(bytes.Repeat([]byte("y"), 5<<20))}, sign(bytes.Repeat([]byte("y"), 5<<20)), http.StatusRequestEntityTooLarge, "body_too_large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "refused-" + string(rune('a'+i))
			status, _, code := post(tc.body, tc.sig, id)
			if status != tc.status || code != tc.code {
				t.Fatalf("answered %d %q, want %d %q", status, code, tc.status, tc.code)
			}
			if _, err := bs.Stat(context.Background(), "payloads/acme/big/"+id); !errors.Is(err, blob.ErrNotFound) {
				t.Fatalf("the refused body left an object (stat: %v)", err)
			}
		})
	}
}
