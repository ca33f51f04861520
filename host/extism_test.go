package host_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vrsky/vrsky/host"
	"github.com/vrsky/vrsky/host/hosttest"
	"github.com/vrsky/vrsky/platform/natsx/natsxtest"
)

func TestExtismPluginRunsAsStep(t *testing.T) {
	nc := natsxtest.Start(t)
	sub, err := nc.NC.SubscribeSync("vrsky.acme.>")
	if err != nil {
		t.Fatal(err)
	}
	rt := hosttest.Runtime(t, host.Config{})
	spec := host.ModuleSpec{Name: "xt", Wasm: hosttest.Build(t, "host/testdata/extism"), Capabilities: host.Capabilities{NATS: true}}
	mod, err := rt.Load(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if !mod.IsExtism() {
		t.Fatal("not detected as an Extism plugin")
	}
	p := hosttest.Pool(t, rt, spec, host.PoolConfig{Env: host.Env{Messaging: host.NATSMessaging{NC: nc.NC}}})
	msgs := []host.Message{
		{ID: "1", Data: []byte("hello")},
		{ID: "2", Data: []byte("emit")},
		{ID: "3", Data: []byte("fail")},
		{ID: "4", Data: []byte("")},
		{ID: "5", Data: []byte("publish:vrsky.acme.audit")},
		{ID: "6", Data: []byte("publish:vrsky.globex.audit")},
		{ID: "7", Data: []byte("panic")},
	}
	res, err := p.Process(context.Background(), msgs)
	if err != nil {
		t.Fatal(err)
	}
	check := func(i int, st host.Status, out string, errHas string) {
		t.Helper()
		r := res[i]
		if r.Status != st || strings.Join(outs(r), ",") != out || !strings.Contains(r.Error, errHas) {
			t.Errorf("msg %d: %v %q out %q", i, r.Status, r.Error, outs(r))
		}
	}
	check(0, host.StatusOK, "HELLO", "")
	check(1, host.StatusOK, "one,two", "")
	check(2, host.StatusPermanent, "", "plugin failed")
	check(3, host.StatusDrop, "", "")
	check(4, host.StatusDrop, "", "")
	check(5, host.StatusPermanent, "", "publish denied")
	check(6, host.StatusRetryable, "", "") // a broken instance: retried, not dead-lettered
	if st := p.Stats(); st.Live != 0 {
		t.Errorf("the instance that panicked was kept: %+v", st)
	}
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil || m.Subject != "vrsky.acme.audit" {
		t.Fatalf("published: %v %v", err, m)
	}
}
