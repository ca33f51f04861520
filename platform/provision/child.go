package provision

import (
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Environment variables that make a process a dedicated instance's
// nats-server (see init).
const (
	// configEnv carries the path of the nats-server configuration file.
	configEnv = "VRSKY_PROVISION_NATS_CONFIG"
	// parentEnv carries the supervising process's pid: the child stops
	// when its parent is no longer that process.
	parentEnv = "VRSKY_PROVISION_PARENT"
)

// Exit codes of the child.
const (
	childStopped  = 0 // stopped by a signal, or its parent went away
	childDied     = 1 // the server shut down by itself
	childBadSetup = 2 // the configuration did not load or the server did not build
)

// childEnv lists the variables of the parent's environment a child
// inherits: the Go runtime's tuning and the temporary folder. The rest
// (database URLs, cloud keys) has no business in a tenant's server.
var childEnv = []string{"GOMAXPROCS", "GOMEMLIMIT", "GOGC", "GODEBUG", "GORACE", "GOTRACEBACK", "GOCOVERDIR", "TMPDIR", "TZ"}

// A process started with configEnv is a dedicated instance: whatever binary
// links this package (vrsky itself, or a test binary) runs nats-server from
// that configuration before its own main, and exits when the server stops.
func init() {
	if path, ok := os.LookupEnv(configEnv); ok {
		os.Exit(childMain(path, os.Getenv(parentEnv)))
	}
}

// childMain runs nats-server from the configuration file at path until
// SIGTERM or SIGINT, until the server stops by itself, or until the
// process whose pid is parent is no longer its parent, and returns the
// exit code. nats-server logs to stderr, which the parent made a file.
func childMain(path, parent string) int {
	stderr := os.Stderr
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		fmt.Fprintf(stderr, "vrsky: dedicated nats-server: configuration: %v\n", err)
		return childBadSetup
	}
	opts.NoSigs = true // the signals are ours, below
	srv, err := server.NewServer(opts)
	if err != nil {
		fmt.Fprintf(stderr, "vrsky: dedicated nats-server: %v\n", err)
		return childBadSetup
	}
	srv.ConfigureLogger()
	go boundLog(os.Stderr, logLimit, logCheck)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	srv.Start() // returns once the listeners run; a listener that fails exits the process
	down := make(chan struct{})
	go func() {
		srv.WaitForShutdown()
		close(down)
	}()
	orphaned := watchParent(parent)
	select {
	case s := <-sigs:
		srv.Noticef("vrsky: %v received, shutting down", s)
	case <-orphaned:
		srv.Noticef("vrsky: the supervising process (pid %s) is gone, shutting down", parent)
	case <-down:
		srv.Errorf("vrsky: the server stopped by itself")
		return childDied
	}
	srv.Shutdown()
	<-down
	return childStopped
}

// watchParent returns a channel that is closed when this process's parent
// is no longer the process whose pid is parent (the parent died and the
// child was re-parented). On Linux the parent-death signal does this
// already; this covers the moment between fork and that setting, and the
// systems without it. An empty or invalid parent is never watched.
func watchParent(parent string) <-chan struct{} {
	gone := make(chan struct{})
	pid, err := strconv.Atoi(parent)
	if err != nil || pid <= 1 {
		return gone
	}
	go func() {
		for os.Getppid() == pid {
			time.Sleep(time.Second)
		}
		close(gone)
	}()
	return gone
}

// selfExecutable is this process's binary, which a child re-executes. On
// Linux /proc/self/exe names the very binary that is running even when an
// upgrade replaced the file on disk, so a child always speaks the parent's
// version of the contract above.
func selfExecutable() (string, error) {
	if runtime.GOOS == "linux" {
		return "/proc/self/exe", nil
	}
	return os.Executable()
}
