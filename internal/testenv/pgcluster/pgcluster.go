// Package pgcluster runs a throwaway PostgreSQL cluster from the system's
// binaries (initdb, postgres): in a temp dir (or a given one), on a free
// loopback port and a unix socket in that dir, with wal_level=logical and
// replication slots, and fsync off. It is for tests (package pgtest wraps
// it), `make run-prod-like`, the benchmarks and `vrsky demo`: never for
// data anyone keeps.
//
// As root, initdb and postgres run as the "postgres" system user, since
// both refuse to run as root; as any other user they run as that user.
// Missing binaries fail with InstallHint.
package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vrsky/vrsky/internal/testenv/internal/proc"
	"github.com/vrsky/vrsky/internal/testenv/internal/stale"
)

// InstallHint tells a developer how to get the PostgreSQL binaries.
const InstallHint = "install PostgreSQL 15+ server binaries: run `make test` (it calls scripts/test-deps.sh), " +
	"or `apt-get install postgresql` (Debian/Ubuntu); pgcluster looks in PATH and /usr/lib/postgresql/*/bin"

// Cluster is one running (or stopped) throwaway PostgreSQL cluster.
type Cluster struct {
	dir     string // owns everything below; removed by Close unless keep
	keep    bool
	dataDir string
	port    int
	bin     string // directory of initdb and postgres
	cred    *syscall.Credential

	mu   sync.Mutex
	cmd  *exec.Cmd
	done <-chan struct{} // closed when cmd exited
	log  *os.File

	dbSeq atomic.Int64
}

// StartCluster initialises and starts a cluster in a new temp dir on a
// free port; the caller must Close it.
func StartCluster() (*Cluster, error) { return StartClusterWith(ClusterOptions{}) }

// ClusterOptions place a cluster for StartClusterWith.
type ClusterOptions struct {
	// Dir keeps the cluster (data, socket, log) across runs: initdb runs
	// only if Dir/data does not exist yet, and Close leaves Dir in place.
	// Empty means a new temp dir that Close removes. As root, Dir and its
	// parents must be reachable by the postgres user.
	Dir string
	// Port is the TCP port on 127.0.0.1; 0 picks a free one.
	Port int
}

// StartClusterWith initialises (if needed) and starts a cluster; the caller
// must Close it.
func StartClusterWith(o ClusterOptions) (*Cluster, error) {
	bin, err := findBinaries()
	if err != nil {
		return nil, err
	}
	c := &Cluster{bin: bin, keep: o.Dir != ""}
	if os.Geteuid() == 0 {
		cred, err := postgresUser()
		if err != nil {
			return nil, err
		}
		c.cred = cred
	}
	if c.keep {
		c.dir, err = filepath.Abs(o.Dir)
		if err == nil {
			// Parents 0755: the postgres user must be able to reach Dir.
			err = os.MkdirAll(c.dir, 0o755)
		}
	} else {
		stale.Sweep("vrsky-pg-*")
		c.dir, err = os.MkdirTemp("", "vrsky-pg-")
		if err == nil {
			err = stale.Mark(c.dir)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("cluster dir: %w", err)
	}
	fail := func(err error) (*Cluster, error) {
		if !c.keep {
			_ = os.RemoveAll(c.dir)
		}
		return nil, err
	}
	if c.cred != nil {
		if err := os.Chown(c.dir, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			return fail(fmt.Errorf("chown %s to postgres: %w", c.dir, err))
		}
		if err := reachable(c.dir); err != nil {
			return fail(err)
		}
	}
	c.dataDir = filepath.Join(c.dir, "data")
	if _, err := os.Stat(filepath.Join(c.dataDir, "PG_VERSION")); err != nil {
		if err := c.initdb(); err != nil {
			return fail(err)
		}
	}
	if o.Port != 0 {
		c.port = o.Port
		if err := c.Start(); err != nil {
			return fail(err)
		}
		return c, nil
	}
	// A free port can be taken between our probe and postgres' bind: retry.
	for attempt := 0; ; attempt++ {
		c.port, err = freePort()
		if err == nil {
			err = c.Start()
		}
		if err == nil {
			return c, nil
		}
		if attempt == 2 {
			return fail(err)
		}
	}
}

func (c *Cluster) initdb() error {
	cmd := exec.Command(filepath.Join(c.bin, "initdb"),
		"-D", c.dataDir, "-U", "postgres", "--auth=trust", "--no-locale", "-E", "UTF8", "--no-sync")
	c.prepare(cmd)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("initdb %s: %w\n%s", c.dataDir, err, out)
	}
	return nil
}

// prepare runs cmd in the cluster dir, as the postgres user when we are root.
func (c *Cluster) prepare(cmd *exec.Cmd) {
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	if c.cred != nil {
		cmd.Env = append(cmd.Env, "HOME="+c.dir, "USER=postgres", "LOGNAME=postgres")
	}
}

// Start starts the server (again, after Stop) on the same port and data, and
// waits until it accepts connections.
func (c *Cluster) Start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd != nil {
		return errors.New("pgcluster: cluster already running")
	}
	logf, err := os.OpenFile(filepath.Join(c.dir, "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("pgcluster: log file: %w", err)
	}
	cmd := exec.Command(filepath.Join(c.bin, "postgres"),
		"-D", c.dataDir,
		"-p", strconv.Itoa(c.port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories="+c.dir,
		"-c", "wal_level=logical",
		"-c", "max_replication_slots=20",
		"-c", "max_wal_senders=20",
		"-c", "max_connections=300",
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "log_min_messages=warning",
	)
	c.prepare(cmd)
	cmd.Stdout, cmd.Stderr = logf, logf
	// If the test binary dies without cleaning up, the postmaster gets
	// SIGQUIT (immediate shutdown) instead of outliving it.
	done, err := proc.Start(cmd, syscall.SIGQUIT)
	if err != nil {
		logf.Close()
		return fmt.Errorf("pgcluster: start postgres: %w", err)
	}
	c.cmd, c.done, c.log = cmd, done, logf

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, c.DSN("postgres"))
		if err == nil {
			_ = conn.Close(ctx)
			return nil
		}
		select {
		case <-done:
			c.cmd, c.done = nil, nil
			logf.Close()
			return fmt.Errorf("pgcluster: postgres exited at start: %s\n%s", cmd.ProcessState, c.logTail())
		case <-ctx.Done():
			c.stopLocked()
			return fmt.Errorf("pgcluster: postgres not ready after 60s: %v\n%s", err, c.logTail())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop shuts the server down (fast shutdown: clients are disconnected) and
// waits for it; the data stays for a later Start.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopLocked()
}

func (c *Cluster) stopLocked() error {
	if c.cmd == nil {
		return nil
	}
	defer func() {
		c.cmd, c.done = nil, nil
		c.log.Close()
	}()
	for _, step := range []struct {
		sig  os.Signal
		wait time.Duration
	}{
		{syscall.SIGINT, 30 * time.Second},  // fast shutdown
		{syscall.SIGQUIT, 10 * time.Second}, // immediate shutdown
		{syscall.SIGKILL, 10 * time.Second},
	} {
		_ = c.cmd.Process.Signal(step.sig)
		select {
		case <-c.done:
			return nil
		case <-time.After(step.wait):
		}
	}
	return fmt.Errorf("pgcluster: postgres (pid %d) did not stop", c.cmd.Process.Pid)
}

// Close stops the server and removes its files (unless they were placed
// with ClusterOptions.Dir).
func (c *Cluster) Close() error {
	err := c.Stop()
	if c.keep {
		return err
	}
	if rerr := os.RemoveAll(c.dir); rerr != nil && err == nil {
		err = rerr
	}
	return err
}

// Port is the server's TCP port on 127.0.0.1.
func (c *Cluster) Port() int { return c.port }

// SocketDir is the directory of the server's unix socket.
func (c *Cluster) SocketDir() string { return c.dir }

// DSN is a connection URL for database db as the superuser "postgres", over
// TCP on loopback.
func (c *Cluster) DSN(db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User("postgres"),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// EnsureDatabase creates database name if it does not exist and returns
// its DSN.
func (c *Cluster) EnsureDatabase(ctx context.Context, name string) (string, error) {
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		return "", fmt.Errorf("pgcluster: connect: %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", fmt.Errorf("pgcluster: look up database %s: %w", name, err)
	}
	if !exists {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
			return "", fmt.Errorf("pgcluster: create database %s: %w", name, err)
		}
	}
	return c.DSN(name), nil
}

// CreateDatabase creates a new, empty database and returns its DSN.
func (c *Cluster) CreateDatabase(ctx context.Context) (name, dsn string, err error) {
	name = fmt.Sprintf("t%d_%d", os.Getpid(), c.dbSeq.Add(1))
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		return "", "", fmt.Errorf("pgcluster: connect: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", "", fmt.Errorf("pgcluster: create database %s: %w", name, err)
	}
	return name, c.DSN(name), nil
}

// DropDatabase drops a database, disconnecting its clients.
func (c *Cluster) DropDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		return fmt.Errorf("pgcluster: connect: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("pgcluster: drop database %s: %w", name, err)
	}
	return nil
}
func (c *Cluster) logTail() string {
	b, err := os.ReadFile(filepath.Join(c.dir, "postgres.log"))
	if err != nil {
		return ""
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Running reports whether the server is started (Start, not Stop).
func (c *Cluster) Running() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cmd != nil
}

// Dir is the directory the cluster owns.
func (c *Cluster) Dir() string { return c.dir }

// ---- discovery ----

func findBinaries() (string, error) {
	var dirs []string
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			dirs = append(dirs, filepath.Dir(real))
		}
		dirs = append(dirs, filepath.Dir(p))
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(matches, func(a, b string) int { return versionOf(b) - versionOf(a) }) // newest first
	dirs = append(dirs, matches...)
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", fmt.Errorf("PostgreSQL binaries (initdb, postgres) not found on %s/%s: %s", runtime.GOOS, runtime.GOARCH, InstallHint)
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

func postgresUser() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, initdb must run as the \"postgres\" user, which does not exist (%v): %s", err, InstallHint)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres gid %q: %w", u.Gid, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

// reachable checks that every parent of dir lets others through, since
// initdb and postgres run as the postgres user.
func reachable(dir string) error {
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return err
		}
		if st.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("the postgres user cannot reach %s: %s is mode %v (needs o+x); choose a directory elsewhere", dir, d, st.Mode().Perm())
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgcluster: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
