package natsx

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
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
	// A user of an account no trusted operator signed.
	stranger, err := GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	// A platform user that may connect in-process only, over the network.
	inProc, inProcKey, err := UserJWT(c.Keys().Platform, "in-process", []string{jwt.ConnectionTypeInProcess}, nil)
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
		{"another operator's account", []nats.Option{userOpt(t, stranger.Platform)}},
		{"in-process user over the network", []nats.Option{nats.UserJWT(func() (string, error) { return inProc, nil }, inProcKey.Sign)}},
	}
}

// userOpt signs in as a new user of account.
func userOpt(t *testing.T, account nkeys.KeyPair) nats.Option {
	t.Helper()
	u, kp, err := UserJWT(account, "test", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return nats.UserJWT(func() (string, error) { return u, nil }, kp.Sign)
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
	if c.ClientURL() != "" || c.KeysPath() != "" {
		t.Errorf("ClientURL %q, KeysPath %q without Listen; want both empty", c.ClientURL(), c.KeysPath())
	}
	if addr := c.d.srv.Addr(); addr != nil {
		t.Errorf("the embedded server listens on %s without Listen", addr)
	}
	if ports := procnet.ListenPorts(t, 0); len(ports) > 0 {
		t.Errorf("this process listens on TCP ports %v without Listen; want none", ports)
	}
	t.Run("refused", func(t *testing.T) {
		for _, tc := range refusedClients(t, c) {
			if tc.name == "in-process user over the network" {
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

// TestEmbeddedListenRequiresKeys: with Listen, a network client gets in
// only as a user minted with the operator keys kept in the data directory;
// the keys are generated once, 0600, and kept across restarts.
func TestEmbeddedListenRequiresKeys(t *testing.T) {
	dir := t.TempDir()
	c := startTest(t, dir, "127.0.0.1:0")
	usable(t, c)
	url := c.ClientURL()
	if url == "" || strings.HasSuffix(url, ":4222") {
		t.Fatalf("ClientURL %q: want a random loopback port for port 0", url)
	}
	keyPath := filepath.Join(dir, KeysFile)
	if c.KeysPath() != keyPath {
		t.Fatalf("KeysPath %q, want %q", c.KeysPath(), keyPath)
	}
	fi, err := os.Stat(keyPath)
	if err != nil {
		t.Fatalf("keys: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("keys mode %v, want 0600", fi.Mode().Perm())
	}
	keys, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range refusedClients(t, c) {
		t.Run("tcp/"+tc.name, func(t *testing.T) { assertRefused(t, url, tc.opts) })
	}
	join := func(t *testing.T, url string) {
		t.Helper()
		node, err := Connect(context.Background(), Options{URL: url, KeysFile: keyPath, Name: "node-2"})
		if err != nil {
			t.Fatalf("join with the keys: %v", err)
		}
		defer node.Close()
		usable(t, node)
	}
	t.Run("tcp/keys", func(t *testing.T) { join(t, url) })

	t.Run("restart keeps the keys", func(t *testing.T) {
		c.Close()
		c2 := startTest(t, dir, "127.0.0.1:0")
		again, err := os.ReadFile(keyPath)
		if err != nil {
			t.Fatal(err)
		}
		if string(again) != string(keys) {
			t.Fatal("the keys changed across a restart")
		}
		join(t, c2.ClientURL())
	})
}

// TestConnectKeyOptions: the keys file is for an external server, where it
// is required, and must hold three seeds of the right kinds.
func TestConnectKeyOptions(t *testing.T) {
	dir := t.TempDir()
	good, err := GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	goodPath := filepath.Join(dir, "good.json")
	if err := good.Save(goodPath); err != nil {
		t.Fatal(err)
	}
	opSeed, _ := good.Operator.Seed()
	acSeed, _ := good.System.Seed()
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"keys with the embedded server", Options{DataDir: dir, KeysFile: goodPath}, "external server"},
		{"external without keys", Options{URL: "nats://127.0.0.1:1"}, "needs KeysFile"},
		{"missing keys file", Options{URL: "nats://127.0.0.1:1", KeysFile: filepath.Join(dir, "none.json")}, "none.json"},
		{"not JSON", Options{URL: "nats://127.0.0.1:1", KeysFile: writeFile(t, dir, "junk.json", "junk")}, "junk.json"},
		{"a seed missing", Options{URL: "nats://127.0.0.1:1", KeysFile: writeFile(t, dir, "short.json", `{"operator":"`+string(opSeed)+`"}`)}, "system_account: missing"},
		{"an account seed as operator", Options{URL: "nats://127.0.0.1:1", KeysFile: writeFile(t, dir, "swapped.json",
			`{"operator":"`+string(acSeed)+`","system_account":"`+string(acSeed)+`","platform_account":"`+string(acSeed)+`"}`)}, "operator: a"},
		{"bad keys in the data dir", Options{DataDir: writeDir(t, KeysFile, "junk"), Listen: "127.0.0.1:0"}, KeysFile},
		{"unreachable server", Options{URL: "nats://127.0.0.1:1", KeysFile: goodPath}, "127.0.0.1:1"},
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

// TestServerConfigRuns: the block Keys.ServerConfig prints is what an
// external server needs: a nats-server started from it (plus JetStream and
// a port) admits VRSky with the keys file, and takes a tenant's account.
func TestServerConfigRuns(t *testing.T) {
	dir := t.TempDir()
	keys, err := GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	keysFile := filepath.Join(dir, KeysFile)
	if err := keys.Save(keysFile); err != nil {
		t.Fatal(err)
	}
	block, err := keys.ServerConfig(filepath.Join(dir, "accounts"))
	if err != nil {
		t.Fatal(err)
	}
	conf := "listen: 127.0.0.1:-1\njetstream { store_dir: " + strconv.Quote(filepath.Join(dir, "js")) + " }\n" + block
	confFile := writeFile(t, dir, "nats.conf", conf)
	opts, err := server.ProcessConfigFile(confFile)
	if err != nil {
		t.Fatalf("the printed configuration does not parse: %v\n%s", err, conf)
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	ctx := context.Background()
	c, err := Connect(ctx, Options{URL: srv.ClientURL(), KeysFile: keysFile, Name: t.Name()})
	if err != nil {
		t.Fatalf("connect with the keys: %v", err)
	}
	t.Cleanup(c.Close)
	usable(t, c)
	acct, err := keys.TenantAccount("acme", 1)
	if err != nil {
		t.Fatal(err)
	}
	claims, err := keys.AccountJWT(pubKey(acct), "tenant-acme", true, Unlimited)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.PushAccount(ctx, "", claims); err != nil {
		t.Fatalf("PushAccount: %v", err)
	}
	tc, err := c.DialAs(ctx, As{Name: "acme", Account: acct})
	if err != nil {
		t.Fatalf("DialAs the tenant: %v", err)
	}
	defer tc.Close()
	usable(t, tc)
}
