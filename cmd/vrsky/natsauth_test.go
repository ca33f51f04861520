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
// TCP for its API only, and keeps no node key.
func TestServeNATSNoListener(t *testing.T) {
	data, addr := t.TempDir(), freeAddr(t)
	in := startServe(t, data, addr)
	_, port, _ := net.SplitHostPort(addr)
	want, _ := strconv.Atoi(port)
	ports := procnet.ListenPorts(t, in.cmd.Process.Pid)
	if len(ports) != 1 || ports[0] != want {
		t.Fatalf("vrsky serve listens on TCP ports %v, want only the API's %d", ports, want)
	}
	if _, err := os.Stat(filepath.Join(data, natsx.NodeKeyFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("node key without --nats-listen: %v, want none", err)
	}
}

// TestServeNATSListenNodes: with --nats-listen the embedded server refuses
// clients without the node key, a second node with a copy of the key
// joins and shares the first one's tenants, and nodes without it cannot
// start.
func TestServeNATSListenNodes(t *testing.T) {
	dataA, natsAddr := t.TempDir(), freeAddr(t)
	a := serveCmd(t, dataA, freeAddr(t))
	a.cmd.Args = append(a.cmd.Args, "--nats-listen", natsAddr)
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a.waitReady()
	natsURL := "nats://" + natsAddr

	keyPath := filepath.Join(dataA, natsx.NodeKeyFile)
	fi, err := os.Stat(keyPath)
	if err != nil {
		t.Fatalf("node key: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("node key mode %v, want 0600", fi.Mode().Perm())
	}
	seed, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	keyCopy := writeTestFile(t, "node.nk", seed)
	wrongKey := writeTestFile(t, "wrong.nk", newSeed(t))

	t.Run("clients", func(t *testing.T) {
		wrong, err := nats.NkeyOptionFromSeed(wrongKey)
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
		b.cmd.Args = append(b.cmd.Args, "--nats-url", natsURL, "--nats-nkey", keyCopy)
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
		{"node without a key", []string{"--nats-url", natsURL}, "Authorization Violation"},
		{"node with a wrong key", []string{"--nats-url", natsURL, "--nats-nkey", wrongKey}, "Authorization Violation"},
		{"node key without --nats-url", []string{"--nats-nkey", keyCopy}, "--nats-nkey"},
		{"nkey and creds", []string{"--nats-url", natsURL, "--nats-nkey", keyCopy, "--nats-creds", keyCopy}, "--nats-creds"},
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
