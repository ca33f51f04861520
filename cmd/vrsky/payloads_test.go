package main

import (
	"crypto/sha256"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// payloadFiles counts the object files in DATA/payloads (temporary files
// of unfinished writes aside).
func payloadFiles(t *testing.T, data string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(filepath.Join(data, "payloads"), func(p string, d os.DirEntry, err error) error {
		if os.IsNotExist(err) {
			return filepath.SkipAll
		}
		if err == nil && !d.IsDir() && filepath.Base(filepath.Dir(p)) != "tmp" {
			n++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// With the embedded NATS server a claim-checked payload waits on the local
// disk (--payload-store auto), is delivered byte for byte, and its file
// goes once the sink has it; --payload-store objects keeps it in the NATS
// Object Store instead; a wrong value stops the server with the flag's name.
func TestServePayloadStore(t *testing.T) {
	for _, tc := range []struct {
		flag      []string
		wantFiles int // payload files while the sink is down
	}{
		{nil, 1},
		{[]string{"--payload-store", "disk"}, 1},
		{[]string{"--payload-store", "objects"}, 0},
		{[]string{"--nats-listen", "127.0.0.1:0"}, 0}, // other nodes may join: the object store
	} {
		t.Run(strings.Join(append([]string{"default"}, tc.flag...), " "), func(t *testing.T) {
			var (
				mu   sync.Mutex
				up   bool
				sums []string
			)
			sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				h := sha256.New()
				if _, err := io.Copy(h, r.Body); err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if !up {
					http.Error(w, "down", http.StatusServiceUnavailable)
					return
				}
				sums = append(sums, string(h.Sum(nil)))
			}))
			t.Cleanup(sink.Close)
			data := t.TempDir()
			in := serveCmd(t, data, freeAddr(t))
			in.cmd.Args = append(in.cmd.Args, tc.flag...)
			if err := in.cmd.Start(); err != nil {
				t.Fatal(err)
			}
			in.waitReady()
			in.setup(sink.URL)

			body := bigBody(2 << 20)
			in.post(body)
			waitFor(t, 10*time.Second, "the payload to be stored", func() bool { return payloadFiles(t, data) >= tc.wantFiles })
			time.Sleep(300 * time.Millisecond) // a wrong store would show a file by now
			if n := payloadFiles(t, data); n != tc.wantFiles {
				t.Fatalf("%d payload files while the sink is down, want %d", n, tc.wantFiles)
			}
			mu.Lock()
			up = true
			mu.Unlock()
			want := sha256.Sum256([]byte(body))
			waitFor(t, 20*time.Second, "delivery", func() bool { mu.Lock(); defer mu.Unlock(); return len(sums) > 0 })
			mu.Lock()
			got := sums
			mu.Unlock()
			if len(got) != 1 || got[0] != string(want[:]) {
				t.Fatalf("sink got %d bodies, want exactly the one posted", len(got))
			}
			waitFor(t, 10*time.Second, "the payload file to be deleted", func() bool { return payloadFiles(t, data) == 0 })
		})
	}

	t.Run("bad value", func(t *testing.T) {
		out, err := exec.Command(vrskyBin, "serve", "--data", t.TempDir(), "--listen", freeAddr(t), "--payload-store", "tape").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "--payload-store") {
			t.Fatalf("serve with --payload-store tape: %v\n%s\nwant a failure naming the flag", err, out)
		}
	})
}
