package tenancy_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrsky/vrsky/platform/natsx"
	"github.com/vrsky/vrsky/platform/natsx/natsxtest"
	"github.com/vrsky/vrsky/platform/store"
	"github.com/vrsky/vrsky/platform/tenancy"
)

// backends are the NATS deployments accounts must isolate tenants on: the
// embedded server and a 3-node cluster in operator mode (what an external
// production cluster runs).
func backends(t *testing.T) map[string]func(t *testing.T) *natsx.Conn {
	return map[string]func(t *testing.T) *natsx.Conn{
		"embedded": func(t *testing.T) *natsx.Conn { return natsxtest.Start(t) },
		"cluster":  func(t *testing.T) *natsx.Conn { return natsxtest.StartCluster(t, 3).Connect(t) },
	}
}

type env struct {
	conn *natsx.Conn
	st   store.Store
	m    *tenancy.Manager
}

func newEnv(t *testing.T, conn *natsx.Conn, tenants ...store.Tenant) *env {
	t.Helper()
	ctx := context.Background()
	st, err := store.NewNATS(ctx, conn.JS, conn.Replicas)
	if err != nil {
		t.Fatal(err)
	}
	m := tenancy.New(conn, st, nil)
	t.Cleanup(m.Close)
	for _, tn := range tenants {
		created, err := st.CreateTenant(ctx, tn)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Sync(ctx, created); err != nil {
			t.Fatalf("Sync %s: %v", tn.Name, err)
		}
	}
	return &env{conn: conn, st: st, m: m}
}

func (e *env) tenantConn(t *testing.T, name string) *natsx.Conn {
	t.Helper()
	c, err := e.m.Conn(context.Background(), name)
	if err != nil {
		t.Fatalf("Conn(%s): %v", name, err)
	}
	return c
}

// stream creates tenant's work stream, as the engine lays it out.
func stream(t *testing.T, c *natsx.Conn, tenant string) jetstream.Stream {
	t.Helper()
	s, err := c.JS.CreateOrUpdateStream(context.Background(), jetstream.StreamConfig{
		Name: "VRSKY_" + strings.ToUpper(tenant) + "_ORDERS", Subjects: []string{"vrsky." + tenant + ".orders.>"},
		Storage: jetstream.FileStorage, Replicas: c.Replicas, MaxBytes: -1,
	})
	if err != nil {
		t.Fatalf("stream of %s: %v", tenant, err)
	}
	return s
}

func msgs(t *testing.T, s jetstream.Stream) uint64 {
	t.Helper()
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// TestTenantsCannotReachEachOther: a client holding tenant A's credentials
// can neither subscribe to, publish to nor read the streams of tenant B,
// nor reach the system account; A's guest user reaches only its own
// application subjects.
func TestTenantsCannotReachEachOther(t *testing.T) {
	for name, start := range backends(t) {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, start(t), store.Tenant{Name: "acme"}, store.Tenant{Name: "globex"})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			a, b := e.tenantConn(t, "acme"), e.tenantConn(t, "globex")
			sa, sb := stream(t, a, "acme"), stream(t, b, "globex")

			// B listens on everything in its account.
			seen, err := b.NC.SubscribeSync(">")
			if err != nil {
				t.Fatal(err)
			}
			_ = b.NC.Flush()
			// A publishes to B's subjects: no stream of A's account answers.
			if _, err := a.JS.Publish(ctx, "vrsky.globex.orders.in", []byte("from acme")); !errors.Is(err, jetstream.ErrNoStreamResponse) && !errors.Is(err, nats.ErrNoResponders) {
				t.Errorf("acme's JetStream publish to globex's subject: %v, want no stream to answer", err)
			}
			// A subscribes to B's subjects and publishes to them.
			spy, err := a.NC.SubscribeSync("vrsky.globex.>")
			if err != nil {
				t.Fatal(err)
			}
			_ = a.NC.Flush()
			if err := a.NC.Publish("vrsky.globex.orders.in", []byte("from acme")); err != nil {
				t.Fatal(err)
			}
			_ = a.NC.Flush()
			// B's own traffic does not reach A.
			if _, err := b.JS.Publish(ctx, "vrsky.globex.orders.in", []byte("globex's own")); err != nil {
				t.Fatalf("globex publishes to its stream: %v", err)
			}
			for {
				m, err := spy.NextMsg(500 * time.Millisecond)
				if err != nil {
					break
				}
				if string(m.Data) != "from acme" { // its own publish, in its own account
					t.Errorf("acme received %q on %s, globex's subject", m.Data, m.Subject)
				}
			}
			for {
				m, err := seen.NextMsg(300 * time.Millisecond)
				if err != nil {
					break
				}
				if string(m.Data) == "from acme" {
					t.Errorf("globex received acme's message on %s", m.Subject)
				}
			}
			if got := msgs(t, sb); got != 1 {
				t.Errorf("globex's stream holds %d messages, want 1 (its own)", got)
			}
			if got := msgs(t, sa); got != 0 {
				t.Errorf("acme's stream holds %d messages, want 0", got)
			}
			// A's JetStream knows none of B's streams.
			if _, err := a.JS.Stream(ctx, "VRSKY_GLOBEX_ORDERS"); !errors.Is(err, jetstream.ErrStreamNotFound) {
				t.Errorf("acme looks up globex's stream: %v, want ErrStreamNotFound", err)
			}
			var names []string
			for n := range a.JS.StreamNames(ctx).Name() {
				names = append(names, n)
			}
			if len(names) != 1 || names[0] != "VRSKY_ACME_ORDERS" {
				t.Errorf("acme's streams %v, want only its own", names)
			}
			// Nor the system account's services.
			if _, err := a.NC.Request("$SYS.REQ.SERVER.PING", nil, time.Second); err == nil {
				t.Error("acme's user got an answer from $SYS.REQ.SERVER.PING")
			}

			t.Run("guest", func(t *testing.T) {
				g, err := e.m.GuestNATS(ctx, "acme")
				if err != nil {
					t.Fatalf("GuestNATS: %v", err)
				}
				errs := make(chan error, 8)
				g.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err })
				own, err := a.NC.SubscribeSync("vrsky.acme._app.>")
				if err != nil {
					t.Fatal(err)
				}
				_ = a.NC.Flush()
				// On a cluster the subscription's interest reaches the
				// guest's server a moment later: publish until it arrives.
				arrived := false
				for deadline := time.Now().Add(10 * time.Second); !arrived && time.Now().Before(deadline); {
					if err := g.Publish("vrsky.acme._app.events", []byte("ok")); err != nil {
						t.Fatal(err)
					}
					_, err := own.NextMsg(200 * time.Millisecond)
					arrived = err == nil
				}
				if !arrived {
					t.Error("the guest's publishes on its application subject did not arrive")
				}
				for _, subj := range []string{"vrsky.acme.orders.in", "$JS.API.STREAM.LIST", "vrsky.globex._app.events"} {
					if err := g.Publish(subj, []byte("no")); err != nil {
						t.Fatal(err)
					}
					_ = g.Flush()
					select {
					case err := <-errs:
						if !errors.Is(err, nats.ErrPermissionViolation) {
							t.Errorf("guest publish on %s: %v, want a permission violation", subj, err)
						}
					case <-time.After(5 * time.Second):
						t.Errorf("guest publish on %s: no permission violation", subj)
					}
				}
				if got := msgs(t, sa); got != 0 {
					t.Errorf("the guest's refused publish reached acme's stream (%d messages)", got)
				}
			})
		})
	}
}

// TestStorageQuotaRefusedByJetStream: the account's claims carry the
// tenant's storage quota, so JetStream itself refuses a write beyond it;
// raising the quota (Sync after an update) lets writes through again.
func TestStorageQuotaRefusedByJetStream(t *testing.T) {
	const quota = 64 << 10
	e := newEnv(t, natsxtest.Start(t), store.Tenant{Name: "acme", Quotas: store.Quotas{MaxStorageBytes: quota}})
	ctx := context.Background()
	a := e.tenantConn(t, "acme")
	s := stream(t, a, "acme")
	payload := make([]byte, 1024)
	var refused error
	for i := range 200 {
		if _, err := a.JS.Publish(ctx, "vrsky.acme.orders.in", payload); err != nil {
			refused = err
			if i < 32 {
				t.Fatalf("publish %d refused below the quota: %v", i, err)
			}
			break
		}
	}
	if !tenancy.IsStorageQuotaExceeded(refused) {
		t.Fatalf("200 KiB into a 64 KiB quota: last error %v, want JetStream's account storage refusal", refused)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Bytes > quota {
		t.Errorf("the stream holds %d bytes, over the %d quota", info.State.Bytes, quota)
	}
	u, err := e.m.Usage(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if u.StorageBytes == 0 || u.StorageBytes > quota || u.Streams != 1 {
		t.Errorf("Usage = %+v, want the stream's bytes (≤ %d) and 1 stream", u, quota)
	}

	tn, err := e.st.GetTenant(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	tn.Quotas.MaxStorageBytes = 1 << 20
	if tn, err = e.st.UpdateTenant(ctx, tn); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Sync(ctx, tn); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := a.JS.Publish(ctx, "vrsky.acme.orders.in", payload)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after raising the quota: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRemoveDeletesAccountAndData: removing a tenant deletes its streams
// and its account (its users can no longer sign in); another tenant keeps
// everything; a tenant created again under the name starts empty, in a
// new account.
func TestRemoveDeletesAccountAndData(t *testing.T) {
	e := newEnv(t, natsxtest.Start(t), store.Tenant{Name: "acme"}, store.Tenant{Name: "globex"})
	ctx := context.Background()
	a, b := e.tenantConn(t, "acme"), e.tenantConn(t, "globex")
	stream(t, a, "acme")
	sb := stream(t, b, "globex")
	if _, err := b.JS.Publish(ctx, "vrsky.globex.orders.in", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	kv, err := a.JS.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "vrsky_kv_acme_orders"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	tn, err := e.st.GetTenant(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	oldAccount, err := e.m.Account(tn)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.m.Remove(ctx, tn); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	// The account is gone: a user of it cannot sign in.
	key, err := e.conn.Keys().TenantAccount("acme", tn.CreatedAt.UnixMicro())
	if err != nil {
		t.Fatal(err)
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if c, err := e.conn.DialAs(dctx, natsx.As{Name: "after-remove", Account: key}); err == nil {
		var left []string
		for n := range c.JS.StreamNames(ctx).Name() {
			left = append(left, n)
		}
		c.Close()
		t.Errorf("a user of the removed account signed in (streams left: %v)", left)
	}
	if got := msgs(t, sb); got != 1 {
		t.Errorf("globex's stream holds %d messages after acme's removal, want 1", got)
	}
	// The same name again: a new account, with nothing in it.
	if err := e.st.DeleteTenant(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond) // a new creation time, to the microsecond
	again, err := e.st.CreateTenant(ctx, store.Tenant{Name: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if acc, _ := e.m.Account(again); acc == oldAccount {
		t.Fatal("a tenant created again under the same name got the old account")
	}
	c := e.tenantConn(t, "acme")
	n := 0
	for range c.JS.StreamNames(ctx).Name() {
		n++
	}
	if n != 0 {
		t.Errorf("the new acme account has %d streams, want none", n)
	}
}

// TestConnUnknownTenant: a tenant the store does not know has no account.
func TestConnUnknownTenant(t *testing.T) {
	e := newEnv(t, natsxtest.Start(t))
	_, err := e.m.Conn(context.Background(), "nobody")
	if !errors.Is(err, tenancy.ErrNoTenant) {
		t.Fatalf("Conn(nobody): %v, want ErrNoTenant", err)
	}
}
