// Package hosttest helps tests run guests through the real host: it builds
// a guest package from source (GOOS=wasip1 GOARCH=wasm, c-shared reactor)
// into a cache outside the checkout, so tests work on a clean checkout
// where no .wasm has been built, and starts a Runtime cleaned up with the
// test.
package hosttest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/vrsky/vrsky/host"
)

// ModuleRoot returns the directory holding go.mod, searching upwards from
// the working directory.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("hosttest: no go.mod above the working directory")
		}
		dir = parent
	}
}

// CacheDir is where built guests and the compilation cache live:
// $VRSKY_TEST_CACHE, else the user cache dir + "/vrsky-test".
func CacheDir() string {
	if d := os.Getenv("VRSKY_TEST_CACHE"); d != "" {
		return d
	}
	d, err := os.UserCacheDir()
	if err != nil {
		d = os.TempDir()
	}
	return filepath.Join(d, "vrsky-test")
}

var buildMu sync.Mutex

// Build compiles the guest package in pkgDir (relative to the module root,
// e.g. "wasm-connectors/jq" or "host/testdata/loop") and returns the Wasm.
// Results are cached by a hash of the package's files, the SDK (abi/), and
// go.mod/go.sum, so a rerun costs nothing.
func Build(tb testing.TB, pkgDir string) []byte {
	tb.Helper()
	b, err := BuildPackage(pkgDir)
	if err != nil {
		tb.Fatalf("hosttest: build %s: %v", pkgDir, err)
	}
	return b
}

// BuildPackage is Build without a testing.TB, for benchmarks and tools.
func BuildPackage(pkgDir string) ([]byte, error) {
	buildMu.Lock()
	defer buildMu.Unlock()
	root, err := ModuleRoot()
	if err != nil {
		return nil, err
	}
	sum, err := sourceHash(root, pkgDir)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(CacheDir(), "wasm")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	out := filepath.Join(dir, strings.ReplaceAll(pkgDir, "/", "_")+"-"+sum[:16]+".wasm")
	if b, err := os.ReadFile(out); err == nil {
		return b, nil
	}
	tmp := out + ".tmp"
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-trimpath", "-o", tmp, "./"+pkgDir)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build: %w\n%s", err, msg)
	}
	if err := os.Rename(tmp, out); err != nil {
		return nil, err
	}
	return os.ReadFile(out)
}

func sourceHash(root, pkgDir string) (string, error) {
	h := sha256.New()
	fmt.Fprintln(h, runtime.Version(), pkgDir)
	var files []string
	for _, d := range []string{pkgDir, "abi"} {
		err := filepath.WalkDir(filepath.Join(root, d), func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !e.IsDir() && strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			return "", err
		}
	}
	files = append(files, filepath.Join(root, "go.mod"), filepath.Join(root, "go.sum"))
	sort.Strings(files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		fmt.Fprintln(h, f, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Runtime starts a host runtime with the shared compilation cache, closed
// when the test ends.
func Runtime(tb testing.TB, cfg host.Config) *host.Runtime {
	tb.Helper()
	if cfg.CacheDir == "" {
		cfg.CacheDir = filepath.Join(CacheDir(), "compiled")
	}
	rt, err := host.New(context.Background(), cfg)
	if err != nil {
		tb.Fatalf("hosttest: runtime: %v", err)
	}
	tb.Cleanup(func() { rt.Close(context.Background()) })
	return rt
}

// Pool loads wasm (trusted or not) and makes a pool for tenant "acme",
// integration "orders", closed when the test ends.
func Pool(tb testing.TB, rt *host.Runtime, spec host.ModuleSpec, cfg host.PoolConfig) *host.Pool {
	tb.Helper()
	mod, err := rt.Load(context.Background(), spec)
	if err != nil {
		tb.Fatalf("hosttest: load %s: %v", spec.Name, err)
	}
	if cfg.Tenant == "" {
		cfg.Tenant = "acme"
	}
	if cfg.Integration == "" {
		cfg.Integration = "orders"
	}
	p, err := mod.NewPool(cfg)
	if err != nil {
		tb.Fatalf("hosttest: pool %s: %v", spec.Name, err)
	}
	tb.Cleanup(func() { p.Close() })
	return p
}
