package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
)

// vrskyBin is the vrsky binary TestMain builds from ../cmd/vrsky.
var vrskyBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vrsky-deploy-test")
	if err != nil {
		panic(err)
	}
	vrskyBin = filepath.Join(dir, "vrsky")
	cmd := exec.Command("go", "build", "-o", vrskyBin, "./cmd/vrsky")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0") // as the Dockerfile builds it
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build vrsky: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// runVrsky runs the binary with args and returns its stdout.
func runVrsky(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(vrskyBin, args...).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("vrsky %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return string(out)
}

var (
	serveFlagsOnce sync.Once
	serveFlagSet   map[string]bool
)

// flagRE matches a flag in cobra's help: "  --nats-url string   ...".
var flagRE = regexp.MustCompile(`(?m)^\s+(?:-\w, )?--([a-z0-9-]+)`)

// serveFlags are the flags `vrsky serve --help` lists.
func serveFlags(t *testing.T) map[string]bool {
	t.Helper()
	serveFlagsOnce.Do(func() {
		serveFlagSet = map[string]bool{}
		for _, m := range flagRE.FindAllStringSubmatch(runVrsky(t, "serve", "--help"), -1) {
			serveFlagSet[m[1]] = true
		}
	})
	if len(serveFlagSet) < 20 || !serveFlagSet["nats-url"] {
		t.Fatalf("vrsky serve --help lists %d flags, without --nats-url: the help format changed?", len(serveFlagSet))
	}
	return serveFlagSet
}

// checkServeEnv fails for every VRSKY_* name in env that is not the
// variable of a `vrsky serve` flag (VRSKY_<FLAG>, dashes as underscores).
func checkServeEnv(t *testing.T, where string, env []string) {
	t.Helper()
	flags := serveFlags(t)
	var bad []string
	for _, name := range env {
		flag, ok := strings.CutPrefix(name, "VRSKY_")
		if !ok || strings.HasPrefix(name, "VRSKY_SECRET_") {
			continue
		}
		if !flags[strings.ToLower(strings.ReplaceAll(flag, "_", "-"))] {
			bad = append(bad, name)
		}
	}
	sort.Strings(bad)
	if len(bad) > 0 {
		t.Errorf("%s sets %v, which name no flag of vrsky serve", where, bad)
	}
}
