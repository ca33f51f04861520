package natsx

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/vrsky/vrsky/internal/testenv/procnet"
)

// startTest runs the embedded server in a fresh data directory, closed by
// t.Cleanup.
func startTest(t *testing.T, dir, listen string) *Conn {
	t.Helper()
	c, err := Connect(context.Background(), Options{DataDir: dir, Listen: listen, Name: t.Name()})
	if err != nil {
		t.Fatalf("start the embedded server: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// writeSeed writes a new nkey user seed to dir/name and returns the path.
func writeSeed(t *testing.T, dir, name string) string {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, err := kp.Seed()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// usable checks that c reaches JetStream and carries core NATS messages.
func usable(t *testing.T, c *Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	sub, err := c.NC.SubscribeSync("vrsky.acme.probe")
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := c.NC.Publish("vrsky.acme.probe", []byte("hi")); err != nil {
		t.Fatalf("publish: %v", err)
	}
	if _, err := sub.NextMsg(10 * time.Second); err != nil {
		t.Fatalf("receive: %v", err)
	}
}

// refusedClients are connections that must not get in: each adds its
// credentials (none for the anonymous one) to the connect options.
func refusedClients(t *testing.T, c *Conn) []struct {
	name string
	opts []nats.Option
} {
	wrong, err := nats.NkeyOptionFromSeed(writeSeed(t, t.TempDir(), "wrong.nk"))
	if err != nil {
		t.Fatal(err)
	}
	return []struct {
		name string
		opts []nats.Option
	}{
		{"anonymous", nil},
		{"user and password", []nats.Option{nats.UserInfo("vrsky", "vrsky")}},
		{"token", []nats.Option{nats.Token("vrsky")}},
		{"unknown nkey", []nats.Option{wrong}},
		// The platform's own key over the network: in-process only.
		{"platform key", c.d.auth},
	}
}

// assertRefused checks that a client with opts cannot connect.
func assertRefused(t *testing.T, url string, opts []nats.Option) {
	t.Helper()
	nc, err := nats.Connect(url, append([]nats.Option{nats.Timeout(5 * time.Second), nats.NoReconnect()}, opts...)...)
	if err == nil {
		nc.Close()
		t.Fatal("connected; want the server to refuse")
	}
	if !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("connect: %v, want %v", err, nats.ErrAuthorization)
	}
}

// assertRefusedInProcess checks that an in-process client with opts
// cannot connect. The refusal does not reach it as an authorization
// error: the server closes the pipe.
func assertRefusedInProcess(t *testing.T, c *Conn, opts []nats.Option) {
	t.Helper()
	opts = append([]nats.Option{nats.InProcessServer(c.d.srv), nats.Timeout(5 * time.Second), nats.NoReconnect()}, opts...)
	nc, err := nats.Connect("nats://in-process", opts...)
	if err == nil {
		nc.Close()
		t.Fatal("connected in-process; want the server to refuse")
	}
}

// TestEmbeddedRefusesStrangersInProcess: without Listen, the server has no
// network listener, and even an in-process client must sign in; the
// platform's connection and those from Dial work.
func TestEmbeddedRefusesStrangersInProcess(t *testing.T) {
	c := startTest(t, t.TempDir(), "")
	usable(t, c)
	if c.ClientURL() != "" || c.NodeKeyPath() != "" {
		t.Errorf("ClientURL %q, NodeKeyPath %q without Listen; want both empty", c.ClientURL(), c.NodeKeyPath())
	}
	if addr := c.d.srv.Addr(); addr != nil {
		t.Errorf("the embedded server listens on %s without Listen", addr)
	}
	if ports := procnet.ListenPorts(t, 0); len(ports) > 0 {
		t.Errorf("this process listens on TCP ports %v without Listen; want none", ports)
	}
	t.Run("refused", func(t *testing.T) {
		for _, tc := range refusedClients(t, c) {
			if tc.name == "platform key" {
				continue // in-process is where it is allowed
			}
			t.Run(tc.name, func(t *testing.T) {
				// An in-process client is refused with a closed pipe, once the
				// server's write deadline (10s) passes: run them side by side.
				t.Parallel()
				assertRefusedInProcess(t, c, tc.opts)
			})
		}
	})
	t.Run("Dial", func(t *testing.T) {
		other, err := c.Dial(context.Background(), "other")
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		usable(t, other)
		other.Close()
		usable(t, c) // closing the second connection leaves the server up
	})
}

// TestEmbeddedListenRequiresNodeKey: with Listen, a network client gets in
// with the node key kept in the data directory only; the key is generated
// once, 0600, and kept across restarts.
func TestEmbeddedListenRequiresNodeKey(t *testing.T) {
	dir := t.TempDir()
	c := startTest(t, dir, "127.0.0.1:0")
	usable(t, c)
	url := c.ClientURL()
	if url == "" || strings.HasSuffix(url, ":4222") {
		t.Fatalf("ClientURL %q: want a random loopback port for port 0", url)
	}
	keyPath := filepath.Join(dir, NodeKeyFile)
	if c.NodeKeyPath() != keyPath {
		t.Fatalf("NodeKeyPath %q, want %q", c.NodeKeyPath(), keyPath)
	}
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

	for _, tc := range refusedClients(t, c) {
		t.Run("tcp/"+tc.name, func(t *testing.T) { assertRefused(t, url, tc.opts) })
	}
	join := func(t *testing.T, url string) {
		t.Helper()
		node, err := Connect(context.Background(), Options{URL: url, NKeyFile: keyPath, Name: "node-2"})
		if err != nil {
			t.Fatalf("join with the node key: %v", err)
		}
		defer node.Close()
		usable(t, node)
	}
	t.Run("tcp/node key", func(t *testing.T) { join(t, url) })

	t.Run("restart keeps the key", func(t *testing.T) {
		c.Close()
		c2 := startTest(t, dir, "127.0.0.1:0")
		again, err := os.ReadFile(keyPath)
		if err != nil {
			t.Fatal(err)
		}
		if string(again) != string(seed) {
			t.Fatal("the node key changed across a restart")
		}
		join(t, c2.ClientURL())
	})
}

// TestConnectCredentialOptions: credential files are for an external
// server, one at a time, and must exist.
func TestConnectCredentialOptions(t *testing.T) {
	dir := t.TempDir()
	seed := writeSeed(t, dir, "user.nk")
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"nkey with the embedded server", Options{DataDir: dir, NKeyFile: seed}, "external server"},
		{"creds with the embedded server", Options{DataDir: dir, CredsFile: seed}, "external server"},
		{"nkey and creds", Options{URL: "nats://127.0.0.1:1", NKeyFile: seed, CredsFile: seed}, "exclusive"},
		{"missing nkey file", Options{URL: "nats://127.0.0.1:1", NKeyFile: filepath.Join(dir, "none.nk")}, "none.nk"},
		{"missing creds file", Options{URL: "nats://127.0.0.1:1", CredsFile: filepath.Join(dir, "none.creds")}, "none.creds"},
		{"not a seed", Options{URL: "nats://127.0.0.1:1", NKeyFile: writeFile(t, dir, "junk.nk", "junk")}, "junk.nk"},
		{"bad node key", Options{DataDir: writeDir(t, NodeKeyFile, "junk"), Listen: "127.0.0.1:0"}, NodeKeyFile},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Connect(context.Background(), tc.opts)
			if err == nil {
				c.Close()
				t.Fatal("Connect succeeded; want an error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Connect: %v; want it to mention %q", err, tc.want)
			}
		})
	}
}

// TestRedact: connect errors never show a password.
func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"nats://u:secret@a:1,nats://u:secret@b:2", "nats://u:xxxxx@a:1,nats://u:xxxxx@b:2"},
	} {
		if got := redact(tc.in); got != tc.want {
			t.Errorf("redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func writeDir(t *testing.T, name, content string) string {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, dir, name, content)
	return dir
}
