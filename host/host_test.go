package host_test

import (
	"context"
	"strings"
	"testing"

	"github.com/vrsky/vrsky/host"
	"github.com/vrsky/vrsky/host/hosttest"
)

func probeSpec(t testing.TB, trusted bool, caps host.Capabilities) host.ModuleSpec {
	return host.ModuleSpec{Name: "probe", Version: "0.0.1", Wasm: hosttest.Build(t, "host/testdata/probe"), Trusted: trusted, Capabilities: caps}
}

func process1(t *testing.T, p *host.Pool, data string, headers map[string]string) host.Result {
	t.Helper()
	h := map[string][]string{}
	for k, v := range headers {
		h[k] = []string{v}
	}
	res, err := p.Process(context.Background(), []host.Message{{ID: "m1", Headers: h, Data: []byte(data)}})
	if err != nil {
		t.Fatalf("process %q: %v", data, err)
	}
	if len(res) != 1 {
		t.Fatalf("process %q: %d results", data, len(res))
	}
	return res[0]
}

func outs(r host.Result) []string {
	var s []string
	for _, o := range r.Out {
		s = append(s, string(o.Data))
	}
	return s
}

func TestProbeMessages(t *testing.T) {
	rt := hosttest.Runtime(t, host.Config{})
	for _, trusted := range []bool{true, false} {
		p := hosttest.Pool(t, rt, probeSpec(t, trusted, host.Capabilities{}), host.PoolConfig{Config: []byte(`{"k":1}`)})
		tests := []struct {
			name    string
			in      string
			status  host.Status
			out     []string
			errHas  string
			headers map[string]string
		}{
			{name: "forward", in: "hello", status: host.StatusOK, out: []string{"hello"}},
			{name: "set data", in: "upper:abc", status: host.StatusOK, out: []string{"ABC"}},
			{name: "drop", in: "drop", status: host.StatusDrop},
			{name: "permanent", in: "fail:x", status: host.StatusPermanent, errHas: "bad record: x"},
			{name: "retryable", in: "retry", status: host.StatusRetryable, errHas: "later"},
			{name: "emit many", in: "multi:3", status: host.StatusOK, out: []string{"0", "1", "2"}},
			{name: "emit none", in: "multi:0", status: host.StatusOK, out: []string{"multi:0"}},
			{name: "header", in: "header:Content-Type", headers: map[string]string{"Content-Type": "text/x"}, status: host.StatusOK, out: []string{"text/x"}},
			{name: "header any case", in: "header:content-type", headers: map[string]string{"Content-Type": "text/y"}, status: host.StatusOK, out: []string{"text/y"}},
			{name: "missing header", in: "header:X-None", status: host.StatusOK, out: []string{""}},
			{name: "header list", in: "headers", headers: map[string]string{"B": "2", "A": "1"}, status: host.StatusOK, out: []string{"A=1,B=2"}},
			{name: "config", in: "config", status: host.StatusOK, out: []string{`{"k":1}`}},
			{name: "log", in: "log", status: host.StatusOK, out: []string{"log"}},
			{name: "panic is permanent", in: "panic", status: host.StatusPermanent, errHas: "boom"},
			{name: "capability not granted", in: "publish:vrsky.acme.x", status: host.StatusPermanent, errHas: "denied"},
			{name: "empty input", in: "", status: host.StatusOK, out: []string{""}},
		}
		for _, tc := range tests {
			name := tc.name
			if !trusted {
				name += "/untrusted"
			}
			t.Run(name, func(t *testing.T) {
				r := process1(t, p, tc.in, tc.headers)
				if r.Status != tc.status {
					t.Fatalf("status = %v (%s), want %v", r.Status, r.Error, tc.status)
				}
				if !strings.Contains(r.Error, tc.errHas) {
					t.Fatalf("error %q lacks %q", r.Error, tc.errHas)
				}
				if got := outs(r); strings.Join(got, "|") != strings.Join(tc.out, "|") || len(got) != len(tc.out) {
					t.Fatalf("out = %q, want %q", got, tc.out)
				}
			})
		}
	}
}

func TestBatchStatusPerMessage(t *testing.T) {
	rt := hosttest.Runtime(t, host.Config{})
	p := hosttest.Pool(t, rt, probeSpec(t, true, host.Capabilities{}), host.PoolConfig{Limits: host.Limits{MaxBatch: 3}})
	in := []string{"upper:a", "fail:b", "drop", "multi:2", "c", "retry", "header:H"}
	msgs := make([]host.Message, len(in))
	for i, s := range in {
		msgs[i] = host.Message{ID: "id" + s, Headers: map[string][]string{"H": {"h"}}, Data: []byte(s)}
	}
	res, err := p.Process(context.Background(), msgs)
	if err != nil {
		t.Fatal(err)
	}
	want := []host.Status{host.StatusOK, host.StatusPermanent, host.StatusDrop, host.StatusOK, host.StatusOK, host.StatusRetryable, host.StatusOK}
	for i, r := range res {
		if r.Status != want[i] {
			t.Errorf("msg %d (%s): status %v, want %v", i, in[i], r.Status, want[i])
		}
	}
	if got := outs(res[3]); len(got) != 2 || res[3].Out[0].ID != "idmulti:2" || res[3].Out[1].ID != "idmulti:2-1" {
		t.Errorf("multi outputs %q ids %q %q", got, res[3].Out[0].ID, res[3].Out[1].ID)
	}
	h := res[6].Out[0].Headers
	if len(h["X-Seen"]) != 1 || h["X-Seen"][0] != "yes" || h["H"][0] != "h" {
		t.Errorf("headers %v", h)
	}
	if _, ok := msgs[6].Headers["X-Seen"]; ok {
		t.Errorf("input headers modified: %v", msgs[6].Headers)
	}
}

func TestOutputLimit(t *testing.T) {
	rt := hosttest.Runtime(t, host.Config{})
	p := hosttest.Pool(t, rt, probeSpec(t, true, host.Capabilities{}), host.PoolConfig{Limits: host.Limits{MaxOutputBytes: 1000}})
	if r := process1(t, p, "big:1000", nil); r.Status != host.StatusOK {
		t.Fatalf("at limit: %v %s", r.Status, r.Error)
	}
	r := process1(t, p, "big:1001", nil)
	if r.Status != host.StatusPermanent || !strings.Contains(r.Error, "output limit") {
		t.Fatalf("over limit: %v %q", r.Status, r.Error)
	}
}

func TestSameBytesKeepTheirOwnCapabilities(t *testing.T) {
	rt := hosttest.Runtime(t, host.Config{})
	ctx := context.Background()
	granted, err := rt.Load(ctx, probeSpec(t, true, host.Capabilities{NATS: true}))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := rt.Load(ctx, probeSpec(t, true, host.Capabilities{}))
	if err != nil {
		t.Fatal(err)
	}
	if !granted.Spec().Capabilities.NATS || plain.Spec().Capabilities.NATS {
		t.Fatal("capabilities mixed up between modules of the same bytes")
	}
	p, err := plain.NewPool(host.PoolConfig{Tenant: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if r := process1(t, p, "publish:vrsky.acme.x", nil); !strings.Contains(r.Error, "denied") {
		t.Fatalf("ungranted publish: %v %q", r.Status, r.Error)
	}
	p.Close()
	// Closing one Module keeps the shared code for the other.
	if err := plain.Close(ctx); err != nil {
		t.Fatal(err)
	}
	p2, err := granted.NewPool(host.PoolConfig{Tenant: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	if r := process1(t, p2, "upper:a", nil); r.Status != host.StatusOK {
		t.Fatalf("%+v", r)
	}
}
