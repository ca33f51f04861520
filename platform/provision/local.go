package provision

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Files in a tenant's folder (Local's dir/<tenant>), beside LogFile and
// the data folders JetStream (jetstream) and the resolver (ResolverDir).
const (
	// ConfigFile is the instance's nats-server configuration, rewritten at
	// each Ensure that starts it.
	ConfigFile = "nats.conf"
	// PortsFile keeps the instance's client and monitor ports, chosen on
	// its first start, so that its URL outlives restarts of the instance
	// and of VRSky.
	PortsFile = "ports.json"
)

// Local's timing.
const (
	// restartMin is the wait before restarting an instance that died; it
	// doubles with each death, up to restartMax, and starts over once an
	// instance has stayed up restartReset.
	restartMin   = 100 * time.Millisecond
	restartMax   = 5 * time.Second
	restartReset = 30 * time.Second
	// stopGrace is how long an instance has to shut down after SIGTERM
	// before it is killed.
	stopGrace = 10 * time.Second
	// healthTimeout bounds one /healthz request.
	healthTimeout = time.Second
	// readyPoll is how often Ensure asks /healthz while it waits.
	readyPoll = 50 * time.Millisecond
)

// loopback is the address dedicated instances listen on: Local serves the
// VRSky nodes of one machine.
const loopback = "127.0.0.1"

// healthPath is the health check Local asks: the server is up and
// JetStream is enabled, without the per-stream checks.
const healthPath = "/healthz?js-enabled-only=true"

// ErrClosed is returned by Local's methods after Close.
var ErrClosed = errors.New("provision: the local provisioner is closed")

// Local runs each dedicated tenant's nats-server as a child process of
// VRSky, the same executable re-executed (see init), and supervises it:
// a child that dies is restarted with exponential backoff. Each tenant has
// a folder of its own under Local's dir with the configuration
// (ConfigFile), the ports (PortsFile), the log (LogFile) and the data
// (jetstream, ResolverDir). Its methods are safe for concurrent use.
type Local struct {
	dir string
	log *slog.Logger
	exe string
	hc  *http.Client

	mu        sync.Mutex
	closed    bool
	instances map[string]*instance
	// locks serialise Ensure and Remove per tenant: a one-slot semaphore
	// for each tenant name ever seen (a few bytes each).
	locks map[string]chan struct{}
}

// instance is one tenant's supervised child.
type instance struct {
	tenant string
	dir    string
	spec   Spec   // what the running configuration was made from
	url    string // client URL
	health string // the monitor's health check URL

	stop chan struct{} // closed: stop the child and end the supervisor
	kill chan struct{} // closed (after stop): kill the child now
	done chan struct{} // closed once the supervisor ended and its child is gone

	mu       sync.Mutex
	pid      int         // the running child's pid, 0 when none
	proc     *os.Process // the running child, nil when none
	restarts int         // restarts after a death
	why      string      // why no child runs; empty while one does
}

// NewLocal returns a provisioner keeping its tenants' folders under dir,
// which it creates if needed. log receives the children's exits and
// restarts; nil discards them.
func NewLocal(dir string, log *slog.Logger) (*Local, error) {
	if dir == "" {
		return nil, errors.New("provision: NewLocal: dir is required")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("provision: NewLocal: %w", err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("provision: NewLocal: %w", err)
	}
	exe, err := selfExecutable()
	if err != nil {
		return nil, fmt.Errorf("provision: NewLocal: this executable: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Local{
		dir: abs,
		log: log,
		exe: exe,
		// No keep-alive: a health check every few seconds per tenant does
		// not need one, and no idle connection outlives a call.
		hc:        &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
		instances: map[string]*instance{},
		locks:     map[string]chan struct{}{},
	}, nil
}

// Ensure makes spec's tenant's instance run with spec's configuration and
// waits, within ctx, until its health check answers with JetStream up. An
// instance already running with the same spec is left as it is; one
// running with another spec (new JWTs) is restarted on a new
// configuration, keeping its data and its URL. The client port is chosen
// (a free loopback port) on the tenant's first start and kept in
// PortsFile. When ctx ends before the instance is ready, the error says
// so and the instance keeps running under supervision: a later Ensure
// waits for it again, Remove stops it.
func (l *Local) Ensure(ctx context.Context, spec Spec) (Instance, error) {
	if err := spec.Validate(); err != nil {
		return Instance{}, err
	}
	unlock, err := l.lock(ctx, spec.Tenant)
	if err != nil {
		return Instance{}, err
	}
	in, err := l.ensure(ctx, spec)
	unlock()
	if err != nil {
		return Instance{}, err
	}
	return l.waitReady(ctx, in)
}

// ensure starts spec's instance unless it runs with spec already; it is
// called with the tenant's lock held.
func (l *Local) ensure(ctx context.Context, spec Spec) (*instance, error) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, ErrClosed
	}
	old := l.instances[spec.Tenant]
	l.mu.Unlock()
	if old != nil && old.spec == spec {
		return old, nil
	}
	restarts := 0
	if old != nil {
		l.log.Info("provision: the tenant's spec changed, restarting its dedicated NATS instance", "tenant", spec.Tenant)
		l.mu.Lock()
		if l.instances[spec.Tenant] == old {
			delete(l.instances, spec.Tenant)
		} else {
			old = nil // Close took it
		}
		l.mu.Unlock()
		if old == nil {
			return nil, ErrClosed
		}
		l.stopInstance(ctx, old)
		restarts = old.restartCount()
	}
	in, err := l.prepare(spec)
	if err != nil {
		return nil, err
	}
	in.restarts = restarts
	exited, err := l.start(in)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		go l.supervise(in, exited)
		close(in.stop)
		<-in.done
		return nil, ErrClosed
	}
	l.instances[spec.Tenant] = in
	go l.supervise(in, exited)
	l.mu.Unlock()
	return in, nil
}

// lock takes tenant's lock, within ctx, and returns its release.
func (l *Local) lock(ctx context.Context, tenant string) (func(), error) {
	l.mu.Lock()
	sem, ok := l.locks[tenant]
	if !ok {
		sem = make(chan struct{}, 1)
		l.locks[tenant] = sem
	}
	l.mu.Unlock()
	select {
	case sem <- struct{}{}:
		return func() { <-sem }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("provision: tenant %s: waiting for another operation on it: %w", tenant, ctx.Err())
	}
}

// ports are an instance's listening ports.
type ports struct {
	Client  int `json:"client"`
	Monitor int `json:"monitor"`
}

// prepare makes spec's tenant folder, its ports and its configuration.
func (l *Local) prepare(spec Spec) (*instance, error) {
	dir := filepath.Join(l.dir, spec.Tenant)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("provision: tenant %s: %w", spec.Tenant, err)
	}
	p, err := loadPorts(filepath.Join(dir, PortsFile))
	if err != nil {
		return nil, fmt.Errorf("provision: tenant %s: %w", spec.Tenant, err)
	}
	listen := net.JoinHostPort(loopback, strconv.Itoa(p.Client))
	monitor := net.JoinHostPort(loopback, strconv.Itoa(p.Monitor))
	conf, err := Config(spec, listen, monitor, dir)
	if err != nil {
		return nil, err
	}
	if err := writeFile(filepath.Join(dir, ConfigFile), conf); err != nil {
		return nil, fmt.Errorf("provision: tenant %s: %w", spec.Tenant, err)
	}
	return &instance{
		tenant: spec.Tenant,
		dir:    dir,
		spec:   spec,
		url:    "nats://" + listen,
		health: "http://" + monitor + healthPath,
		stop:   make(chan struct{}),
		kill:   make(chan struct{}),
		done:   make(chan struct{}),
		why:    "not started",
	}, nil
}

// loadPorts reads the ports kept in path, or picks two free loopback ports
// and keeps them there.
func loadPorts(path string) (ports, error) {
	var p ports
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &p); err != nil {
			return p, fmt.Errorf("%s: %w", path, err)
		}
		if !validPort(p.Client) || !validPort(p.Monitor) {
			return p, fmt.Errorf("%s: ports must be 1-65535, not %d and %d", path, p.Client, p.Monitor)
		}
		return p, nil
	case !errors.Is(err, fs.ErrNotExist):
		return p, err
	}
	free, err := freePorts(2)
	if err != nil {
		return p, err
	}
	p = ports{Client: free[0], Monitor: free[1]}
	b, err = json.Marshal(p)
	if err != nil {
		return p, err
	}
	return p, writeFile(path, append(b, '\n'))
}

func validPort(n int) bool { return n >= 1 && n <= 65535 }

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var out []int
	for range n {
		ln, err := net.Listen("tcp", net.JoinHostPort(loopback, "0"))
		if err != nil {
			return nil, fmt.Errorf("pick a free port: %w", err)
		}
		defer ln.Close()
		out = append(out, ln.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

// writeFile replaces path's content with b (0600) through a temporary file,
// so that a crash leaves the old content or the new, never a part.
func writeFile(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

// start starts in's child and returns the channel its exit arrives on.
func (l *Local) start(in *instance) (<-chan error, error) {
	logw, err := openLog(filepath.Join(in.dir, LogFile))
	if err != nil {
		return nil, fmt.Errorf("provision: tenant %s: log: %w", in.tenant, err)
	}
	cmd := exec.Command(l.exe)
	// argv[0] names the child in ps; the child never reads its arguments.
	cmd.Args = []string{"vrsky-tenant-nats", in.tenant}
	cmd.Env = childEnviron(filepath.Join(in.dir, ConfigFile))
	cmd.Dir = in.dir
	cmd.Stdout, cmd.Stderr = logw, logw
	cmd.SysProcAttr = childAttr()
	err = cmd.Start()
	_ = logw.Close() // the child has its own copy
	if err != nil {
		return nil, fmt.Errorf("provision: tenant %s: start its nats-server: %w", in.tenant, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	in.mu.Lock()
	in.pid, in.proc, in.why = cmd.Process.Pid, cmd.Process, ""
	in.mu.Unlock()
	l.log.Debug("provision: dedicated NATS instance started", "tenant", in.tenant, "pid", cmd.Process.Pid, "url", in.url)
	return exited, nil
}

// childEnviron is a child's environment: the variables of childEnv that
// are set here, and the two that make it a nats-server.
func childEnviron(conf string) []string {
	env := []string{configEnv + "=" + conf, parentEnv + "=" + strconv.Itoa(os.Getpid())}
	for _, k := range childEnv {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// supervise waits for in's child (whose exit arrives on exited) and
// restarts it when it dies, until in.stop closes; it then stops the child
// and closes in.done.
func (l *Local) supervise(in *instance, exited <-chan error) {
	defer close(in.done)
	backoff := restartMin
	since := time.Now()
	for {
		if exited != nil {
			select {
			case err := <-exited:
				up := time.Since(since)
				why := exitReason(err)
				pid := in.stopped("exited (" + why + "), restarting")
				l.log.Warn("provision: dedicated NATS instance exited, restarting it",
					"tenant", in.tenant, "pid", pid, "exit", why, "uptime", up.Round(time.Millisecond),
					"last_log", lastLine(filepath.Join(in.dir, LogFile)), "after", backoff)
				if up >= restartReset {
					backoff = restartMin
				}
			case <-in.stop:
				l.terminate(in, exited)
				return
			}
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-in.stop:
			t.Stop()
			in.stopped("stopped")
			return
		}
		backoff = min(2*backoff, restartMax)
		in.mu.Lock()
		in.restarts++
		in.mu.Unlock()
		var err error
		exited, err = l.start(in)
		since = time.Now()
		if err != nil {
			in.stopped(err.Error())
			l.log.Error("provision: dedicated NATS instance did not restart", "tenant", in.tenant, "err", err, "retry_after", backoff)
		}
	}
}

// terminate stops in's child: SIGTERM, then SIGKILL after stopGrace or as
// soon as in.kill closes.
func (l *Local) terminate(in *instance, exited <-chan error) {
	in.mu.Lock()
	pid, p := in.pid, in.proc
	in.mu.Unlock()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		_ = p.Kill()
	}
	t := time.NewTimer(stopGrace)
	defer t.Stop()
	var err error
	select {
	case err = <-exited:
	case <-t.C:
		l.log.Warn("provision: dedicated NATS instance ignored SIGTERM, killing it", "tenant", in.tenant, "pid", pid, "grace", stopGrace)
		_ = p.Kill()
		err = <-exited
	case <-in.kill:
		_ = p.Kill()
		err = <-exited
	}
	in.stopped("stopped")
	l.log.Info("provision: dedicated NATS instance stopped", "tenant", in.tenant, "pid", pid, "exit", exitReason(err))
}

// stopped records that in has no child, and why; it returns the pid the
// child had.
func (in *instance) stopped(why string) int {
	in.mu.Lock()
	defer in.mu.Unlock()
	pid := in.pid
	in.pid, in.proc, in.why = 0, nil, why
	return pid
}

func (in *instance) restartCount() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.restarts
}

// stopInstance stops in's supervisor and child, which must no longer be in
// l.instances, and waits for them; when ctx ends first, the child is
// killed at once.
func (l *Local) stopInstance(ctx context.Context, in *instance) {
	close(in.stop)
	select {
	case <-in.done:
	case <-ctx.Done():
		close(in.kill)
		<-in.done
	}
}

// exitReason says how a child ended, from cmd.Wait's error.
func exitReason(err error) string {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return "exit status 0"
	case errors.As(err, &ee):
		return ee.ProcessState.String()
	}
	return err.Error()
}

// lastLine returns the last non-empty line of the file at path (from its
// last 4 KiB), or "".
func lastLine(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const tail = 4 << 10
	if st, err := f.Stat(); err == nil && st.Size() > tail {
		_, _ = f.Seek(-tail, io.SeekEnd)
	}
	b, _ := io.ReadAll(io.LimitReader(f, tail))
	b = bytes.TrimRight(b, "\r\n")
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[i+1:]
	}
	return strings.ToValidUTF8(string(b), "?")
}

// waitReady polls in's health check until it answers ok, ctx ends or in
// is stopped.
func (l *Local) waitReady(ctx context.Context, in *instance) (Instance, error) {
	t := time.NewTicker(readyPoll)
	defer t.Stop()
	for {
		err := l.check(ctx, in)
		if err == nil {
			return Instance{Tenant: in.tenant, URL: in.url}, nil
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return Instance{}, fmt.Errorf("provision: tenant %s's dedicated NATS instance is not ready: %w (last check: %v; its log is %s)",
				in.tenant, ctx.Err(), err, filepath.Join(in.dir, LogFile))
		case <-in.done:
			return Instance{}, fmt.Errorf("provision: tenant %s's dedicated NATS instance was stopped before it was ready", in.tenant)
		}
	}
}

// check asks in's health check once, within healthTimeout.
func (l *Local) check(ctx context.Context, in *instance) error {
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, in.health, nil)
	if err != nil {
		return err
	}
	resp, err := l.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health check: %s: %s", resp.Status, bytes.TrimSpace(body))
	}
	return nil
}

// Remove stops tenant's instance and deletes its folder, data included.
// A tenant without an instance or a folder is not an error. ctx bounds
// the wait for a clean shutdown: when it ends first, the child is killed.
func (l *Local) Remove(ctx context.Context, tenant string) error {
	if !tenantLabel.MatchString(tenant) {
		return specErr("Tenant", "%q is not a DNS label", tenant)
	}
	unlock, err := l.lock(ctx, tenant)
	if err != nil {
		return err
	}
	defer unlock()
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	in := l.instances[tenant]
	delete(l.instances, tenant)
	l.mu.Unlock()
	if in != nil {
		l.stopInstance(ctx, in)
	}
	if err := os.RemoveAll(filepath.Join(l.dir, tenant)); err != nil {
		return fmt.Errorf("provision: remove tenant %s's folder: %w", tenant, err)
	}
	if in != nil {
		l.log.Info("provision: dedicated NATS instance removed, data deleted", "tenant", tenant)
	}
	return nil
}

// Health returns the state of every instance, sorted by tenant; Ready
// comes from a health check made now (each within a second, all at once).
func (l *Local) Health() []Health {
	l.mu.Lock()
	list := make([]*instance, 0, len(l.instances))
	for _, in := range l.instances {
		list = append(list, in)
	}
	l.mu.Unlock()
	slices.SortFunc(list, func(a, b *instance) int { return strings.Compare(a.tenant, b.tenant) })
	out := make([]Health, len(list))
	var wg sync.WaitGroup
	for i, in := range list {
		wg.Go(func() { out[i] = l.health(in) })
	}
	wg.Wait()
	return out
}

func (l *Local) health(in *instance) Health {
	in.mu.Lock()
	h := Health{Tenant: in.tenant, URL: in.url, Monitor: strings.TrimSuffix(in.health, healthPath), Restarts: in.restarts}
	pid, why := in.pid, in.why
	in.mu.Unlock()
	if pid == 0 {
		h.Err = why
		return h
	}
	if err := l.check(context.Background(), in); err != nil {
		h.Err = err.Error()
		return h
	}
	h.Ready = true
	return h
}

// PID is the pid of tenant's running child, 0 when none runs (for tests
// and diagnostics).
func (l *Local) PID(tenant string) int {
	l.mu.Lock()
	in := l.instances[tenant]
	l.mu.Unlock()
	if in == nil {
		return 0
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.pid
}

// Close stops every instance (SIGTERM, SIGKILL after 10 s) and keeps
// their folders: VRSky is shutting down, and a later Local on the same dir
// brings them back, data included, through Ensure. Later calls of Ensure
// and Remove return ErrClosed; Close itself may be called again.
func (l *Local) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	list := l.instances
	l.instances = map[string]*instance{}
	l.mu.Unlock()
	var wg sync.WaitGroup
	for _, in := range list {
		wg.Go(func() { l.stopInstance(context.Background(), in) })
	}
	wg.Wait()
	l.hc.CloseIdleConnections()
	return nil
}

// Has reports whether this Local keeps an instance of tenant, running or
// not (its folder exists): the instances to bring back after a restart.
func (l *Local) Has(tenant string) bool {
	if !tenantLabel.MatchString(tenant) {
		return false
	}
	_, err := os.Stat(filepath.Join(l.dir, tenant, PortsFile))
	return err == nil
}
