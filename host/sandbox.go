package host

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"

	"github.com/vrsky/vrsky/abi"
)

// Defaults for Config's compile bounds.
const (
	// DefaultCompileTimeout bounds an untrusted module's compilation. The
	// largest shipped Go module (7 MB) compiles in 3–6 s on two busy cores.
	DefaultCompileTimeout = 60 * time.Second
	// DefaultCompileMemory bounds the memory of the process that compiles
	// an untrusted module. The largest shipped Go module peaks at about
	// 215 MiB of Go memory.
	DefaultCompileMemory = 1 << 30
)

// The names of the compile bounds, as CompileError.Limit carries them.
const (
	// CompileLimitTime: the compiler ran past Config.CompileTimeout.
	CompileLimitTime = "compile time"
	// CompileLimitMemory: the compiler used more than Config.CompileMemory.
	CompileLimitMemory = "compile memory"
	// CompileLimitCrash: the compiler process ended abnormally (the
	// kernel's data limit, a fault); Reason carries what it printed.
	CompileLimitCrash = "compile process"
)

// CompileError is a module that did not compile: the compiler refused it
// (Limit is empty), or compiling it went past a bound.
type CompileError struct {
	// Limit names the bound that was passed (CompileLimit*), or is empty
	// when the compiler found the module invalid.
	Limit string
	// Reason is the compiler's message, or what passing the bound means.
	Reason string
}

func (e *CompileError) Error() string {
	if e.Limit == "" {
		return "does not compile: " + e.Reason
	}
	return fmt.Sprintf("compilation refused (%s): %s", e.Limit, e.Reason)
}

// sandboxEnv carries a sandboxConfig to the child process; its presence
// makes the binary a compiler and nothing else (see init).
const sandboxEnv = "VRSKY_HOST_COMPILE_SANDBOX"

// Exit codes of the child.
const (
	sandboxOK       = 0
	sandboxInvalid  = 1 // stdout holds the compiler's message
	sandboxOverMem  = 3
	sandboxBadSetup = 4 // stdout holds the error
)

// sandboxConfig is what the child needs to compile exactly as the parent
// would, so that the parent then finds the result in the shared
// compilation cache.
type sandboxConfig struct {
	CacheDir    string `json:"cache_dir"`
	MemoryPages uint32 `json:"memory_pages"`
	Untrusted   bool   `json:"untrusted"`
	Memory      int64  `json:"memory"`
}

// A process started with sandboxEnv is a compile child: whatever binary
// links this package (vrsky itself, or a test binary) runs sandboxMain
// before its own main and exits. See RATIONALE.md, "Why compile untrusted
// modules in a child process?".
func init() {
	if raw, ok := os.LookupEnv(sandboxEnv); ok {
		os.Exit(sandboxMain(raw, os.Stdin, os.Stdout))
	}
}

// sandboxMain compiles the module on in, under a memory bound, into the
// compilation cache, and reports through its exit code.
func sandboxMain(raw string, in io.Reader, out io.Writer) int {
	var c sandboxConfig
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		fmt.Fprintf(out, "sandbox config: %v", err)
		return sandboxBadSetup
	}
	limitData(c.Memory)
	nice()
	go watchMemory(uint64(c.Memory), out)
	wasm, err := io.ReadAll(io.LimitReader(in, abi.MaxModuleBytes+1))
	if err != nil {
		fmt.Fprintf(out, "read module: %v", err)
		return sandboxBadSetup
	}
	ctx := context.Background()
	cache, err := wazero.NewCompilationCacheWithDir(c.CacheDir)
	if err != nil {
		fmt.Fprintf(out, "compilation cache: %v", err)
		return sandboxBadSetup
	}
	w := wazero.NewRuntimeWithConfig(ctx, runtimeConfig(cache, c.MemoryPages, c.Untrusted))
	if _, err := w.CompileModule(ctx, wasm); err != nil {
		fmt.Fprint(out, err)
		return sandboxInvalid
	}
	return sandboxOK
}

// watchMemory ends the child when the Go runtime holds more than limit
// bytes. The kernel's data limit (limitData) is the backstop for a single
// huge request; this catches the steady growth of a compiler that works
// hard, in every build (the race detector's shadow memory rules out the
// kernel limit there).
func watchMemory(limit uint64, out io.Writer) {
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}}
	for {
		metrics.Read(s)
		if v := s[0].Value.Uint64(); v > limit {
			fmt.Fprintf(out, "the compiler used %d MiB, over the limit of %d MiB", v>>20, limit>>20)
			os.Exit(sandboxOverMem)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sandbox bounds the compilations of untrusted modules in this process:
// one child at a time, and each module proven once.
var sandbox struct {
	sem    chan struct{}
	mu     sync.Mutex
	proven map[[32]byte]bool
}

func init() {
	sandbox.sem = make(chan struct{}, 1)
	sandbox.proven = map[[32]byte]bool{}
}

// compileUntrusted compiles an untrusted module: first in a child process
// under the runtime's time and memory bounds, into the runtime's
// compilation cache, then here, where wazero reads the child's result. A
// module that already compiled in a child in this process is not sent to
// one again (the same bytes and configuration compile the same way). One
// untrusted compilation runs at a time, so that uploads cannot take more
// than one core and one bound of memory between them.
func (r *Runtime) compileUntrusted(ctx context.Context, key moduleKey, wz wazero.Runtime, wasm []byte) (wazero.CompiledModule, error) {
	select {
	case sandbox.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-sandbox.sem }()
	sandbox.mu.Lock()
	done := sandbox.proven[key.sum]
	sandbox.mu.Unlock()
	if !done {
		if err := r.runSandbox(ctx, wasm); err != nil {
			return nil, err
		}
		sandbox.mu.Lock()
		sandbox.proven[key.sum] = true
		sandbox.mu.Unlock()
	}
	return wz.CompileModule(ctx, wasm)
}

func (r *Runtime) runSandbox(ctx context.Context, wasm []byte) error {
	cfg, err := json.Marshal(sandboxConfig{
		CacheDir: r.cacheDir, MemoryPages: r.cfg.MaxMemoryPages, Untrusted: true, Memory: r.cfg.CompileMemory,
	})
	if err != nil {
		return fmt.Errorf("host: sandbox config: %w", err)
	}
	exe, err := selfExecutable()
	if err != nil {
		return fmt.Errorf("host: compile sandbox: %w", err)
	}
	tctx, cancel := context.WithTimeout(ctx, r.cfg.CompileTimeout)
	defer cancel()
	cmd := exec.CommandContext(tctx, exe)
	cmd.Env = append(os.Environ(), sandboxEnv+"="+string(cfg), "GOMAXPROCS=1", "GOTRACEBACK=none")
	cmd.Stdin = bytes.NewReader(wasm)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &limitedBuffer{b: &stdout, n: 4 << 10}, &limitedBuffer{b: &stderr, n: 4 << 10}
	cmd.WaitDelay = time.Second
	ownGroup(cmd)
	start := time.Now()
	err = cmd.Run()
	took := time.Since(start)
	if err == nil {
		r.log.Debug("untrusted module compiled in the sandbox", "took", took)
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if tctx.Err() != nil {
		return &CompileError{Limit: CompileLimitTime, Reason: fmt.Sprintf("the compiler ran past the limit of %v", r.cfg.CompileTimeout)}
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return fmt.Errorf("host: compile sandbox: %w", err)
	}
	msg := strings.TrimSpace(stdout.String())
	switch ee.ExitCode() {
	case sandboxInvalid:
		return &CompileError{Reason: msg}
	case sandboxOverMem:
		return &CompileError{Limit: CompileLimitMemory, Reason: msg}
	case sandboxBadSetup:
		return fmt.Errorf("host: compile sandbox: %s", msg)
	}
	tail := strings.TrimSpace(stderr.String())
	if i := strings.IndexByte(tail, '\n'); i >= 0 {
		tail = tail[:i]
	}
	return &CompileError{Limit: CompileLimitCrash, Reason: fmt.Sprintf("the compiler process ended with %v: %s", ee.ProcessState, tail)}
}

// selfExecutable is this process's binary. On Linux /proc/self/exe names
// it even when the file was replaced on disk by an upgrade.
func selfExecutable() (string, error) {
	if runtime.GOOS == "linux" {
		return "/proc/self/exe", nil
	}
	return os.Executable()
}

// limitedBuffer keeps the first n bytes written and drops the rest, so a
// child that prints a lot cannot grow the parent.
type limitedBuffer struct {
	b *bytes.Buffer
	n int
}

func (w *limitedBuffer) Write(p []byte) (int, error) {
	if room := w.n - w.b.Len(); room > 0 {
		w.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
