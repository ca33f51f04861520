package host_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vrsky/vrsky/host"
	"github.com/vrsky/vrsky/host/hosttest"
)

func TestLoopStoppedAtDeadline(t *testing.T) {
	rt := hosttest.Runtime(t, host.Config{})
	p := hosttest.Pool(t, rt, probeSpec(t, false, host.Capabilities{}), host.PoolConfig{Limits: host.Limits{Timeout: 300 * time.Millisecond}})
	start := time.Now()
	res, err := p.Process(context.Background(), []host.Message{
		{ID: "a", Data: []byte("upper:a")}, {ID: "b", Data: []byte("loop")}, {ID: "c", Data: []byte("upper:c")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("loop ran %v", d)
	}
	if res[0].Status != host.StatusOK || outs(res[0])[0] != "A" {
		t.Errorf("message before the loop: %+v", res[0])
	}
	for _, r := range res[1:] {
		if r.Status != host.StatusRetryable || !strings.Contains(r.Error, "deadline") {
			t.Errorf("after the loop: %v %q", r.Status, r.Error)
		}
	}
	// The worker goes on with a fresh instance.
	if r := process1(t, p, "upper:ok", nil); r.Status != host.StatusOK || outs(r)[0] != "OK" {
		t.Fatalf("after deadline: %+v", r)
	}
}

func TestFailuresDiscardInstance(t *testing.T) {
	rt := hosttest.Runtime(t, host.Config{MaxMemoryPages: 1024}) // 64 MiB
	for _, tc := range []struct {
		name, in, errHas string
		trusted          bool
	}{
		{"out of memory", "oom", "trapped", true},
		{"out of memory untrusted", "oom", "trapped", false},
		{"exit", "exit", "exited (code 3", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A deadline far away: growing to the ceiling under the race
			// detector on a busy machine can take seconds, and a call that
			// passes its deadline is reported as that, whatever ended it.
			cfg := host.PoolConfig{Limits: host.Limits{Timeout: 2 * time.Minute}}
			p := hosttest.Pool(t, rt, probeSpec(t, tc.trusted, host.Capabilities{}), cfg)
			r := process1(t, p, tc.in, nil)
			if r.Status != host.StatusRetryable || !strings.Contains(r.Error, tc.errHas) {
				t.Fatalf("got %v %q, want retryable with %q", r.Status, r.Error, tc.errHas)
			}
			if s := p.Stats(); s.Live != 0 || s.Discarded != 1 || s.Created != 1 || s.Calls != 1 || s.Messages != 1 {
				t.Fatalf("broken instance kept, or counts wrong: %+v", s)
			}
			if r := process1(t, p, "upper:x", nil); r.Status != host.StatusOK {
				t.Fatalf("next message: %+v", r)
			}
		})
	}
}

func TestMemoryPageLimitPerPool(t *testing.T) {
	rt := hosttest.Runtime(t, host.Config{})
	p := hosttest.Pool(t, rt, probeSpec(t, true, host.Capabilities{}), host.PoolConfig{Limits: host.Limits{MaxMemoryPages: 1}})
	// Any Go guest has more than one page: the instance works for this
	// call, then is discarded instead of kept warm.
	if r := process1(t, p, "upper:x", nil); r.Status != host.StatusOK {
		t.Fatalf("%+v", r)
	}
	if s := p.Stats(); s.Live != 0 {
		t.Fatalf("instance above the page limit kept: %+v", s)
	}
}

func TestLoadRefusesImports(t *testing.T) {
	rt := hosttest.Runtime(t, host.Config{})
	ctx := context.Background()
	tests := []struct {
		name   string
		wasm   []byte
		errHas string
	}{
		{"WASI directory (Go os.ReadFile)", hosttest.Build(t, "host/testdata/forbidden"), "wasi_snapshot_preview1.path_open"},
		{"foreign module", rawModule([][2]string{{"env", "evil"}}), "env.evil"},
		{"socket", rawModule([][2]string{{"wasi_snapshot_preview1", "sock_accept"}}), "wasi_snapshot_preview1.sock_accept"},
		{"unknown vrsky function", rawModule([][2]string{{"vrsky", "exec"}}), "vrsky.exec"},
		{"wrong signature", rawModule([][2]string{{"vrsky", "emit"}}), "vrsky.emit"},
		{"not wasm", []byte("hello"), "not a WebAssembly binary"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := rt.Load(ctx, host.ModuleSpec{Name: "bad", Wasm: tc.wasm})
			if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Fatalf("err = %v, want one naming %q", err, tc.errHas)
			}
		})
	}
	var ie *host.ImportError
	_, err := rt.Load(ctx, host.ModuleSpec{Name: "bad", Wasm: rawModule([][2]string{{"env", "evil"}})})
	if !errors.As(err, &ie) || ie.Module != "env" || ie.Name != "evil" {
		t.Fatalf("not an ImportError: %v", err)
	}
	// With StubWASIFiles the same module loads, and its file access fails.
	spec := host.ModuleSpec{Name: "stubbed", Wasm: hosttest.Build(t, "host/testdata/forbidden"), StubWASIFiles: true}
	p := hosttest.Pool(t, rt, spec, host.PoolConfig{})
	if r := process1(t, p, "x", nil); r.Status != host.StatusPermanent || !strings.Contains(r.Error, "Capabilities insufficient") {
		t.Fatalf("stubbed file read: %v %q", r.Status, r.Error)
	}
	// The raw module without imports is valid.
	if _, err := rt.Load(ctx, host.ModuleSpec{Name: "ok", Wasm: rawModule(nil)}); err != nil {
		t.Fatal(err)
	}
}

func TestPoolGrowsAndReclaims(t *testing.T) {
	rt := hosttest.Runtime(t, host.Config{})
	p := hosttest.Pool(t, rt, probeSpec(t, true, host.Capabilities{}), host.PoolConfig{Limits: host.Limits{MaxInstances: 3, IdleTimeout: time.Hour}})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				res, err := p.Process(context.Background(), []host.Message{{ID: "x", Data: []byte("upper:q")}})
				if err != nil || res[0].Status != host.StatusOK {
					t.Errorf("process: %v %+v", err, res)
					return
				}
			}
		}()
	}
	wg.Wait()
	s := p.Stats()
	if s.Live < 1 || s.Live > 3 || s.Idle != s.Live {
		t.Fatalf("stats after load: %+v", s)
	}
	if n := host.Reclaim(p, time.Now().Add(2*time.Hour)); n != s.Live {
		t.Fatalf("reclaimed %d of %d", n, s.Live)
	}
	if s := p.Stats(); s.Live != 0 {
		t.Fatalf("after reclaim: %+v", s)
	}
	if r := process1(t, p, "upper:z", nil); r.Status != host.StatusOK {
		t.Fatalf("after reclaim: %+v", r)
	}
	p.Close()
	if _, err := p.Process(context.Background(), []host.Message{{Data: []byte("x")}}); err == nil {
		t.Fatal("closed pool processed")
	}
}

// TestHammer drives one untrusted pool from many goroutines with a mix of
// good messages, failures and runaway loops: every result is the right
// one, and the pool ends consistent.
func TestHammer(t *testing.T) {
	rt := hosttest.Runtime(t, host.Config{})
	p := hosttest.Pool(t, rt, probeSpec(t, false, host.Capabilities{}),
		host.PoolConfig{Limits: host.Limits{Timeout: 100 * time.Millisecond, MaxInstances: 3, MaxBatch: 4}})
	inputs := []struct {
		in     string
		status host.Status
		outs   int
	}{
		{"upper:x", host.StatusOK, 1}, {"fail:x", host.StatusPermanent, 0}, {"multi:3", host.StatusOK, 3},
		{"drop", host.StatusDrop, 0}, {"loop", host.StatusRetryable, 0}, {"panic", host.StatusPermanent, 0},
	}
	var wg sync.WaitGroup
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 12; i++ {
				var msgs []host.Message
				for k := 0; k < 5; k++ {
					in := inputs[(g+i+k)%len(inputs)]
					if in.in == "loop" && (i%4 != 0) {
						in = inputs[0]
					}
					msgs = append(msgs, host.Message{ID: in.in, Data: []byte(in.in)})
				}
				res, err := p.Process(context.Background(), msgs)
				if err != nil {
					t.Error(err)
					return
				}
				loopChunk := -1 // the guest call (batch of 4) a runaway loop broke
				for k, r := range res {
					if k/4 == loopChunk { // after the loop in the same guest call
						if r.Status != host.StatusRetryable {
							t.Errorf("after loop: %v", r.Status)
						}
						continue
					}
					var want = inputs[0]
					for _, in := range inputs {
						if in.in == msgs[k].ID {
							want = in
						}
					}
					if r.Status != want.status || len(r.Out) != want.outs {
						t.Errorf("%s: %v %q outs %d", msgs[k].ID, r.Status, r.Error, len(r.Out))
					}
					if msgs[k].ID == "loop" {
						loopChunk = k / 4
					}
				}
			}
		}(g)
	}
	wg.Wait()
	if s := p.Stats(); s.Live > 3 || s.Idle != s.Live {
		t.Fatalf("pool after hammer: %+v", s)
	}
}
