package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/vrsky/vrsky/internal/testenv/procnet"

	"github.com/vrsky/vrsky/platform/natsx"
)

// TestServeNATSNoListener: without --nats-listen, vrsky serve listens on
// TCP for its API only; the embedded server's operator keys are its
// owner's alone.
func TestServeNATSNoListener(t *testing.T) {
	data, addr := t.TempDir(), freeAddr(t)
	in := startServe(t, data, addr)
	_, port, _ := net.SplitHostPort(addr)
	want, _ := strconv.Atoi(port)
	ports := procnet.ListenPorts(t, in.cmd.Process.Pid)
	if len(ports) != 1 || ports[0] != want {
		t.Fatalf("vrsky serve listens on TCP ports %v, want only the API's %d", ports, want)
	}
	fi, err := os.Stat(filepath.Join(data, natsx.KeysFile))
	if err != nil {
		t.Fatalf("operator keys: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("operator keys mode %v, want 0600", fi.Mode().Perm())
	}
}

// TestServeNATSListenNodes: with --nats-listen the embedded server refuses
// clients that hold no user minted with its operator keys, a second node
// with a copy of the keys joins and shares the first one's tenants, and
// nodes without them cannot start.
func TestServeNATSListenNodes(t *testing.T) {
	dataA, natsAddr := t.TempDir(), freeAddr(t)
	a := serveCmd(t, dataA, freeAddr(t))
	a.cmd.Args = append(a.cmd.Args, "--nats-listen", natsAddr)
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a.waitReady()
	natsURL := "nats://" + natsAddr

	keys, err := os.ReadFile(filepath.Join(dataA, natsx.KeysFile))
	if err != nil {
		t.Fatalf("operator keys: %v", err)
	}
	keyCopy := writeTestFile(t, "keys.json", keys)
	other, err := natsx.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	wrongKey := filepath.Join(t.TempDir(), "other.json")
	if err := other.Save(wrongKey); err != nil {
		t.Fatal(err)
	}

	t.Run("clients", func(t *testing.T) {
		wrong, err := nats.NkeyOptionFromSeed(writeTestFile(t, "wrong.nk", newSeed(t)))
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name string
			opts []nats.Option
		}{
			{"anonymous", nil},
			{"user and password", []nats.Option{nats.UserInfo("vrsky", "vrsky")}},
			{"token", []nats.Option{nats.Token("vrsky")}},
			{"unknown nkey", []nats.Option{wrong}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				nc, err := nats.Connect(natsURL, append([]nats.Option{nats.Timeout(5 * time.Second), nats.NoReconnect()}, tc.opts...)...)
				if err == nil {
					nc.Close()
					t.Fatal("connected to the embedded server; want it refused")
				}
				if !errors.Is(err, nats.ErrAuthorization) {
					t.Fatalf("connect: %v, want %v", err, nats.ErrAuthorization)
				}
			})
		}
	})

	t.Run("node with the key joins", func(t *testing.T) {
		a.call("POST", "/api/v1/tenants", adminKey, "application/json", `{"name":"acme"}`, http.StatusCreated, nil)
		b := serveCmd(t, t.TempDir(), freeAddr(t))
		b.cmd.Args = append(b.cmd.Args, "--nats-url", natsURL, "--nats-keys", keyCopy)
		if err := b.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		b.waitReady()
		b.call("GET", "/api/v1/tenants/acme", adminKey, "", "", http.StatusOK, nil)
	})

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"node without keys", []string{"--nats-url", natsURL}, "--nats-keys"},
		{"node with another operator's keys", []string{"--nats-url", natsURL, "--nats-keys", wrongKey}, "Authorization Violation"},
		{"keys without --nats-url", []string{"--nats-keys", keyCopy}, "--nats-keys"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			args := append([]string{"serve", "--data", t.TempDir(), "--listen", freeAddr(t), "--admin-key", adminKey}, tc.args...)
			out, err := exec.CommandContext(ctx, vrskyBin, args...).CombinedOutput()
			if err == nil || ctx.Err() != nil || !strings.Contains(string(out), tc.want) {
				t.Fatalf("serve %s: %v\n%s\nwant it to stop with %q", strings.Join(tc.args, " "), err, out, tc.want)
			}
		})
	}
}

// newSeed returns a new nkey user seed.
func newSeed(t *testing.T) []byte {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, err := kp.Seed()
	if err != nil {
		t.Fatal(err)
	}
	return seed
}

// writeTestFile writes b to a new 0600 file name and returns its path.
func writeTestFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
