package provision_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrsky/vrsky/platform/provision"
)

// ensureTimeout bounds an Ensure in tests: a child under the race detector
// on two busy cores takes a few seconds to start.
const ensureTimeout = 60 * time.Second

// newLocal returns a Local on dir that the test closes, and whose
// children's logs it prints when it fails.
func newLocal(t *testing.T, dir string) *provision.Local {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	l, err := provision.NewLocal(dir, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if t.Failed() {
			logs, _ := filepath.Glob(filepath.Join(dir, "*", provision.LogFile+"*"))
			for _, p := range logs {
				b, _ := os.ReadFile(p)
				t.Logf("%s:\n%s", p, b)
			}
		}
	})
	return l
}

func ensure(t *testing.T, l *provision.Local, spec provision.Spec) provision.Instance {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ensureTimeout)
	defer cancel()
	in, err := l.Ensure(ctx, spec)
	if err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	if in.Tenant != spec.Tenant {
		t.Fatalf("Ensure: instance of %q, want %q", in.Tenant, spec.Tenant)
	}
	return in
}

// connect signs in to url as a new user of tr's tenant account.
func connect(t *testing.T, tr *trust, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	tok, seed := user(t, tr.acc, "app")
	nc, err := nats.Connect(url, nats.UserJWTAndSeed(tok, string(seed)),
		nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatalf("connect to %s as the tenant: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// publish creates stream ORDERS (on orders.>) unless it exists and
// publishes n messages to it, each acknowledged; it returns their payloads.
func publish(t *testing.T, js jetstream.JetStream, n int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: "ORDERS", Subjects: []string{"orders.>"}, Storage: jetstream.FileStorage,
	}); err != nil {
		t.Fatalf("create stream: %v", err)
	}
	var sent []string
	for i := range n {
		p := fmt.Sprintf(`{"order":%d}`, i)
		if _, err := js.Publish(ctx, "orders.new", []byte(p)); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		sent = append(sent, p)
	}
	return sent
}

// checkStream fails unless stream ORDERS holds exactly the payloads want,
// in order.
func checkStream(t *testing.T, js jetstream.JetStream, want []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, "ORDERS")
	if err != nil {
		t.Fatalf("stream ORDERS: %v", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != uint64(len(want)) {
		t.Fatalf("stream holds %d messages, want %d", info.State.Msgs, len(want))
	}
	for i, w := range want {
		m, err := s.GetMsg(ctx, info.State.FirstSeq+uint64(i))
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if string(m.Data) != w {
			t.Fatalf("message %d = %s, want %s", i, m.Data, w)
		}
	}
}

// waitFor polls cond until it returns nil, failing the test with its last
// error after timeout.
func waitFor(t *testing.T, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// healthOf returns tenant's entry of l.Health().
func healthOf(l *provision.Local, tenant string) (provision.Health, bool) {
	for _, h := range l.Health() {
		if h.Tenant == tenant {
			return h, true
		}
	}
	return provision.Health{}, false
}

// gone fails unless no process has pid (the child was reaped) and nothing
// listens at url.
func gone(t *testing.T, pid int, url string) {
	t.Helper()
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("child %d still exists (kill 0: %v)", pid, err)
	}
	closed(t, url)
}

// closed fails if something listens at url.
func closed(t *testing.T, url string) {
	t.Helper()
	u, err := neturl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", u.Host, time.Second); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections", u.Host)
	}
}

// TestEnsure: the tenant's users sign in and use JetStream; users of an
// account the instance does not hold, and anonymous clients, are refused;
// a second Ensure changes nothing.
func TestEnsure(t *testing.T) {
	tr := newTrust(t)
	l := newLocal(t, t.TempDir())
	in := ensure(t, l, tr.spec("acme"))

	_, js := connect(t, tr, in.URL)
	sent := publish(t, js, 20)
	checkStream(t, js, sent)

	// An account of the same operator, signed and valid, that the instance
	// was not given: the full resolver finds no JWT for it.
	stranger, _, _ := tr.account(t, "stranger", true)
	tok, seed := user(t, stranger, "intruder")
	for _, tc := range []struct {
		name string
		opts []nats.Option
	}{
		{name: "user of another account", opts: []nats.Option{nats.UserJWTAndSeed(tok, string(seed))}},
		{name: "anonymous"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The server waits for an account lookup that nobody answers
			// (about 2 s) before refusing: allow more than nats.go's 2 s.
			nc, err := nats.Connect(in.URL, append(tc.opts, nats.Timeout(10*time.Second), nats.NoReconnect())...)
			if err == nil {
				nc.Close()
				t.Fatal("connected")
			}
			if !errors.Is(err, nats.ErrAuthorization) {
				t.Fatalf("err = %v, want %v", err, nats.ErrAuthorization)
			}
		})
	}

	pid := l.PID("acme")
	if pid == 0 {
		t.Fatal("PID = 0 for a running instance")
	}
	again := ensure(t, l, tr.spec("acme"))
	if again != in || l.PID("acme") != pid {
		t.Errorf("second Ensure: %+v pid %d, want %+v pid %d", again, l.PID("acme"), in, pid)
	}
	h, ok := healthOf(l, "acme")
	if !ok || !h.Ready || h.URL != in.URL || h.Restarts != 0 || h.Err != "" {
		t.Errorf("Health = %+v, want ready at %s, no restarts", h, in.URL)
	}
	if got := l.PID("nobody"); got != 0 {
		t.Errorf("PID of an unknown tenant = %d", got)
	}
}

// TestRestartAfterKill: a child killed with SIGKILL is restarted on the
// same URL, and no acknowledged message is lost.
func TestRestartAfterKill(t *testing.T) {
	tr := newTrust(t)
	spec := tr.spec("acme")
	// SyncAlways: with interval sync nats-server acknowledges a message
	// once it is in the message block's buffer, which a flusher writes to
	// the file within a few milliseconds (filestore's coalescing), so a
	// SIGKILL right after the last acks can lose the tail. With SyncAlways
	// the write (O_SYNC) happens before the ack.
	spec.SyncAlways = true
	l := newLocal(t, t.TempDir())
	in := ensure(t, l, spec)
	_, js := connect(t, tr, in.URL)
	sent := publish(t, js, 200)

	pid := l.PID("acme")
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() error {
		if h, _ := healthOf(l, "acme"); h.Ready {
			return fmt.Errorf("still ready after the kill: %+v", h)
		}
		return nil
	})
	waitFor(t, ensureTimeout, func() error {
		h, _ := healthOf(l, "acme")
		if !h.Ready || h.Restarts != 1 {
			return fmt.Errorf("Health = %+v, want ready after one restart", h)
		}
		if h.URL != in.URL {
			return fmt.Errorf("URL %s after the restart, was %s", h.URL, in.URL)
		}
		return nil
	})
	if got := l.PID("acme"); got == pid || got == 0 {
		t.Errorf("PID = %d after the restart, was %d", got, pid)
	}
	checkStream(t, js, sent) // through the client's reconnect
}

// TestRemove: Remove stops the child and deletes its data; the next Ensure
// starts afresh, and removing an unknown tenant is no error.
func TestRemove(t *testing.T) {
	tr := newTrust(t)
	dir := t.TempDir()
	l := newLocal(t, dir)
	in := ensure(t, l, tr.spec("acme"))
	nc, js := connect(t, tr, in.URL)
	publish(t, js, 5)
	nc.Close()
	pid := l.PID("acme")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := l.Remove(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if got := l.PID("acme"); got != 0 {
		t.Errorf("PID = %d after Remove", got)
	}
	gone(t, pid, in.URL)
	if _, err := os.Stat(filepath.Join(dir, "acme")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the tenant's folder is still there: %v", err)
	}
	if hs := l.Health(); len(hs) != 0 {
		t.Errorf("Health after Remove = %+v", hs)
	}
	for _, tenant := range []string{"acme", "never-seen"} {
		if err := l.Remove(ctx, tenant); err != nil {
			t.Errorf("Remove(%s) of nothing: %v", tenant, err)
		}
	}
	var se *provision.SpecError
	if err := l.Remove(ctx, "../acme"); !errors.As(err, &se) || se.Field != "Tenant" {
		t.Errorf("Remove(../acme) = %v, want a SpecError on Tenant", err)
	}

	in = ensure(t, l, tr.spec("acme"))
	_, js = connect(t, tr, in.URL)
	info, err := js.AccountInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Streams != 0 {
		t.Errorf("%d streams after Remove and Ensure, want none", info.Streams)
	}
}

// TestCloseKeepsData: Close stops the children and keeps their folders; a
// new Local on the same dir brings the instance back on the same URL with
// its messages.
func TestCloseKeepsData(t *testing.T) {
	tr := newTrust(t)
	dir := t.TempDir()
	l := newLocal(t, dir)
	in := ensure(t, l, tr.spec("acme")) // interval sync: a clean shutdown writes everything
	nc, js := connect(t, tr, in.URL)
	sent := publish(t, js, 50)
	nc.Close()
	pid := l.PID("acme")

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	gone(t, pid, in.URL)
	if _, err := os.Stat(filepath.Join(dir, "acme", "jetstream")); err != nil {
		t.Errorf("JetStream data after Close: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := l.Ensure(ctx, tr.spec("acme")); !errors.Is(err, provision.ErrClosed) {
		t.Errorf("Ensure after Close = %v, want ErrClosed", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	l2 := newLocal(t, dir)
	in2 := ensure(t, l2, tr.spec("acme"))
	if in2.URL != in.URL {
		t.Errorf("URL %s after the restart of VRSky, was %s", in2.URL, in.URL)
	}
	_, js = connect(t, tr, in2.URL)
	checkStream(t, js, sent)
}

// TestEnsureNewSpec: new account claims restart the instance on a new
// configuration, same URL and data, and the server enforces the new
// limits.
func TestEnsureNewSpec(t *testing.T) {
	tr := newTrust(t)
	l := newLocal(t, t.TempDir())
	spec := tr.spec("acme")
	in := ensure(t, l, spec)
	_, js := connect(t, tr, in.URL)
	sent := publish(t, js, 10)
	pid := l.PID("acme")

	// Another name too: a JWT's id hashes its common claims only (issuer,
	// subject, name, issue time in seconds…), and the resolver keeps the
	// JWT it has when the new one has the same id, as new limits issued
	// within the same second would.
	spec.AccountJWT = tr.accountJWT(t, tr.accPub, tr.accName+"-v2", true, 32<<20)
	in2 := ensure(t, l, spec)
	if in2 != in {
		t.Errorf("instance %+v after the new spec, was %+v", in2, in)
	}
	if got := l.PID("acme"); got == pid || got == 0 {
		t.Errorf("PID = %d after the new spec, was %d: not restarted", got, pid)
	}
	if h, _ := healthOf(l, "acme"); h.Restarts != 0 {
		t.Errorf("Restarts = %d: a restart for a new spec is no death", h.Restarts)
	}
	_, js = connect(t, tr, in2.URL)
	checkStream(t, js, sent)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	info, err := js.AccountInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Limits.MaxStore != 32<<20 {
		t.Errorf("account's MaxStore = %d, want the new claims' %d", info.Limits.MaxStore, 32<<20)
	}
}

// TestEnsureRefusesBadSpec: Ensure checks the spec before touching
// anything.
func TestEnsureRefusesBadSpec(t *testing.T) {
	tr := newTrust(t)
	dir := t.TempDir()
	l := newLocal(t, dir)
	spec := tr.spec("acme")
	spec.AccountJWT = ""
	var se *provision.SpecError
	if _, err := l.Ensure(context.Background(), spec); !errors.As(err, &se) || se.Field != "AccountJWT" {
		t.Fatalf("Ensure = %v, want a SpecError on AccountJWT", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("Ensure of a bad spec left %d entries in the dir", len(entries))
	}
}

// TestCrashLoop: a child that cannot start (its client port is taken) is
// restarted again and again, Ensure gives up at its deadline with an error
// that points at the log, and the instance comes up once the port is free.
func TestCrashLoop(t *testing.T) {
	tr := newTrust(t)
	dir := t.TempDir()
	l := newLocal(t, dir)
	in := ensure(t, l, tr.spec("acme"))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	u, err := neturl.Parse(in.URL)
	if err != nil {
		t.Fatal(err)
	}
	squat, err := net.Listen("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer squat.Close()

	l = newLocal(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err = l.Ensure(ctx, tr.spec("acme"))
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), provision.LogFile) {
		t.Fatalf("Ensure = %v, want a deadline error that names %s", err, provision.LogFile)
	}
	waitFor(t, 30*time.Second, func() error {
		h, _ := healthOf(l, "acme")
		if h.Ready || h.Restarts < 2 || h.Err == "" {
			return fmt.Errorf("Health = %+v, want not ready, an error, restarts", h)
		}
		return nil
	})
	squat.Close()
	waitFor(t, ensureTimeout, func() error {
		if h, _ := healthOf(l, "acme"); !h.Ready {
			return fmt.Errorf("Health = %+v, want ready once the port is free", h)
		}
		return nil
	})
	if again := ensure(t, l, tr.spec("acme")); again != in {
		t.Errorf("instance %+v, want %+v", again, in)
	}
}
