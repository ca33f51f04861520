package host

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/tetratelabs/wazero/api"

	"github.com/vrsky/vrsky/abi"
	"github.com/vrsky/vrsky/platform/blob"
)

// fuzzModule is a valid ABI v1 module with one page of memory, assembled
// by hand: the fuzzer calls host functions as if from it.
var fuzzModule = []byte{
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
	1, 9, 2, 0x60, 0, 0, 0x60, 1, 0x7f, 1, 0x7f, // types
	3, 3, 2, 0, 1, // functions
	5, 3, 1, 0x00, 1, // memory: 1 page
	7, 41, 3, // exports
	12, 'v', 'r', 's', 'k', 'y', '_', 'a', 'b', 'i', '_', 'v', '1', 0, 0,
	13, 'v', 'r', 's', 'k', 'y', '_', 'p', 'r', 'o', 'c', 'e', 's', 's', 0, 1,
	6, 'm', 'e', 'm', 'o', 'r', 'y', 2, 0,
	10, 9, 2, 2, 0, 0x0b, 4, 0, 0x41, 0, 0x0b, // code
}

// fake backends: the fuzzer needs answers without a network.
type memKV struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (k *memKV) Get(_ context.Context, key string) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	v, ok := k.m[key]
	if !ok {
		return nil, ErrNotFound
	}
	return v, nil
}
func (k *memKV) Put(_ context.Context, key string, v []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.m[key] = v
	return nil
}
func (k *memKV) Delete(_ context.Context, key string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.m, key)
	return nil
}

type echoNATS struct{}

func (echoNATS) Publish(context.Context, string, []byte) error { return nil }
func (echoNATS) Request(_ context.Context, _ string, d []byte, _ time.Duration) ([]byte, error) {
	return d, nil
}

type memObjects struct{}

func (memObjects) Get(context.Context, string) (io.ReadCloser, blob.Info, error) {
	return io.NopCloser(bytes.NewReader(bytes.Repeat([]byte("o"), 5000))), blob.Info{}, nil
}
func (memObjects) Put(_ context.Context, _ string, r io.Reader) (blob.Info, error) {
	n, err := io.Copy(io.Discard, r)
	return blob.Info{Size: n}, err
}

type noHTTP struct{}

func (noHTTP) Do(*http.Request) (*http.Response, error) { return nil, errors.New("no network in fuzz") }

// FuzzHostFunctions calls every ABI host function with hostile pointers,
// lengths and codes from the guest side. The host must never panic, must
// answer an ABI code, and must only touch guest memory through wazero's
// bounds-checked views.
func FuzzHostFunctions(f *testing.F) {
	ctx := context.Background()
	rt, err := New(ctx, Config{})
	if err != nil {
		f.Fatal(err)
	}
	defer rt.Close(ctx)
	mod, err := rt.Load(ctx, ModuleSpec{Name: "fuzz", Wasm: fuzzModule, Trusted: true,
		Capabilities: Capabilities{NATS: true, KV: true, Objects: true, HTTPHosts: []string{"*"}}})
	if err != nil {
		f.Fatal(err)
	}
	pool, err := mod.NewPool(PoolConfig{Tenant: "acme", Integration: "orders", Config: []byte(`{"a":1}`),
		Env: Env{Messaging: echoNATS{}, KV: &memKV{m: map[string][]byte{}}, Objects: memObjects{}, HTTP: noHTTP{}}})
	if err != nil {
		f.Fatal(err)
	}
	defer pool.Close()
	pi, err := pool.acquire(ctx)
	if err != nil {
		f.Fatal(err)
	}
	inst := pi.inst.(*abiInstance)
	m := inst.mod
	mem := m.Memory()
	// Seed guest memory with strings the fuzzer can point at.
	mem.Write(0, []byte("vrsky.acme.x\x00payloads/acme/p\x00key\x00https://h/\x00Content-Type\x00GET"))

	f.Add(uint8(0), uint32(0), uint32(0), uint32(100), uint32(0), uint32(0), uint32(0), uint32(0))
	f.Add(uint8(1), uint32(0), uint32(12), uint32(200), uint32(64), uint32(0), uint32(0), uint32(0))
	f.Add(uint8(9), uint32(0), uint32(12), uint32(0), uint32(3), uint32(500), uint32(100), uint32(4))
	f.Add(uint8(11), uint32(13), uint32(15), uint32(0), uint32(0), uint32(0), uint32(0), uint32(0))
	f.Add(uint8(3), uint32(65530), uint32(10), uint32(0), uint32(0), uint32(0), uint32(0), uint32(0))
	f.Add(uint8(19), uint32(0xffffffff), uint32(0xffffffff), uint32(0xfffffff0), uint32(0x20), uint32(0), uint32(0), uint32(0))
	f.Add(uint8(16), uint32(29), uint32(3), uint32(65535), uint32(1), uint32(0), uint32(0), uint32(0))

	msgs := []Message{{ID: "1", Headers: map[string][]string{"Content-Type": {"x"}}, Data: []byte("payload")}}
	f.Fuzz(func(t *testing.T, which uint8, a, b, c, d, e, g, h uint32) {
		fn := vrskyFunctions[int(which)%len(vrskyFunctions)]
		results := make([]Result, 1)
		st := inst.st
		st.begin(msgs, results)
		cctx, cancel := pool.callContext(ctx, st, time.Second)
		defer cancel()
		if which%2 == 0 {
			st.selectMessage(0)
		}
		stack := make([]uint64, max(len(fn.params), len(fn.results), 1))
		vals := []uint32{a, b, c, d, e, g, h, a ^ c, b ^ d, c ^ e}
		for i := range fn.params {
			stack[i] = api.EncodeU32(vals[i])
		}
		wrap(fn)(cctx, m, stack)
		if len(fn.results) > 0 {
			code := api.DecodeI32(stack[0])
			if code < abi.ErrBadHandle {
				t.Fatalf("%s returned %d, not an ABI code", fn.name, code)
			}
		}
		st.finish()
		if mem.Size() != 65536 {
			t.Fatalf("memory size changed: %d", mem.Size())
		}
	})
}
