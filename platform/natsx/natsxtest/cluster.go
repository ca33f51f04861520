package natsxtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrsky/vrsky/platform/natsx"
)

// Cluster is a JetStream cluster of real nats-servers on loopback, in
// operator mode as production clusters run for VRSky: they trust the
// operator of Keys (saved in KeysFile, what `vrsky serve --nats-keys`
// takes) and keep account claims in a full resolver each.
type Cluster struct {
	Servers  []*server.Server
	Keys     *natsx.Keys
	KeysFile string
}

// StartCluster runs an n-node JetStream cluster on free loopback ports,
// each node with its own store under t.TempDir(), and waits until it has
// a JetStream meta leader. t.Cleanup shuts it down.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c, err := NewCluster(t.TempDir(), n)
	if c != nil {
		t.Cleanup(c.Shutdown)
	}
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// NewCluster is StartCluster for a program (the load driver's -nodes
// runs): its stores go under dir, and Shutdown stops it. On an error the
// servers started are shut down.
//
// The route ports are picked free and then bound by the servers, so another
// process can take one in between; a cluster whose listeners do not come up
// is started again on new ports, up to three times.
func NewCluster(dir string, n int) (*Cluster, error) {
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		var c *Cluster
		c, err = newCluster(filepath.Join(dir, fmt.Sprintf("try%d", attempt)), n)
		if !errors.Is(err, errListen) {
			return c, err
		}
	}
	return nil, err
}

// errListen marks a node whose listeners did not come up.
var errListen = errors.New("listeners not up")

func newCluster(dir string, n int) (c *Cluster, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	keys, err := natsx.GenerateKeys()
	if err != nil {
		return nil, err
	}
	keysFile := filepath.Join(dir, natsx.KeysFile)
	if err := keys.Save(keysFile); err != nil {
		return nil, err
	}
	ports := make([]int, n)
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return nil, err
		}
	}
	var routes []*url.URL
	for _, p := range ports {
		routes = append(routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", p)})
	}
	c = &Cluster{Keys: keys, KeysFile: keysFile}
	defer func() {
		if err != nil {
			c.Shutdown()
			c = nil
		}
	}()
	var fatals []*fatalLog
	for i := range n {
		opts := &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1",
			Port:       -1,
			JetStream:  true,
			StoreDir:   filepath.Join(dir, fmt.Sprintf("n%d", i+1)),
			NoSigs:     true,
			Cluster: server.ClusterOpts{
				Name: "vrsky-test",
				Host: "127.0.0.1",
				Port: ports[i],
			},
			Routes: routes,
		}
		if err := natsx.TrustOptions(opts, keys, filepath.Join(dir, fmt.Sprintf("n%d-accounts", i+1))); err != nil {
			return c, err
		}
		s, err := server.NewServer(opts)
		if err != nil {
			return c, fmt.Errorf("cluster node %d: %w", i+1, err)
		}
		fatal := &fatalLog{}
		s.SetLogger(fatal, false, false)
		fatals = append(fatals, fatal)
		go s.Start()
		c.Servers = append(c.Servers, s)
	}
	listenBy := time.Now().Add(30 * time.Second)
	for i, s := range c.Servers {
		// A listener that cannot bind logs a fatal error at once: give up
		// on these ports then rather than at the deadline.
		for !s.ReadyForConnections(100 * time.Millisecond) {
			if fatals[i].failed() || time.Now().After(listenBy) {
				return c, fmt.Errorf("cluster node %s not ready (%s): %w", s.Name(), fatals[i].last(), errListen)
			}
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ready := true
		for _, s := range c.Servers {
			ready = ready && s.JetStreamIsClustered() && s.JetStreamIsCurrent()
		}
		// The meta leader must see every peer online with stats, or stream
		// placement fails with "no suitable peers".
		if l := c.leader(); ready && l != nil && len(l.JetStreamClusterPeers()) == n && c.placesReplicas(n) {
			return c, nil
		}
		if time.Now().After(deadline) {
			return c, fmt.Errorf("cluster not formed after 30s: %d nodes, want every peer online at the meta leader", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fatalLog is a nats-server logger that keeps only the last fatal error
// (a listener that could not bind), for the error that says a node did
// not come up.
type fatalLog struct {
	mu  sync.Mutex
	msg string
}

func (l *fatalLog) Fatalf(format string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msg = fmt.Sprintf(format, v...)
}

func (l *fatalLog) failed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.msg != ""
}

func (l *fatalLog) last() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.msg == "" {
		return "no error logged"
	}
	return l.msg
}

func (*fatalLog) Noticef(string, ...any) {}
func (*fatalLog) Warnf(string, ...any)   {}
func (*fatalLog) Errorf(string, ...any)  {}
func (*fatalLog) Debugf(string, ...any)  {}
func (*fatalLog) Tracef(string, ...any)  {}

// Shutdown stops every server that still runs and waits for them.
func (c *Cluster) Shutdown() {
	for _, s := range c.Servers {
		s.Shutdown()
		s.WaitForShutdown()
	}
}

// placesReplicas reports whether the cluster can place, and write to, a
// stream with n replicas right now: peers can look online to the meta
// leader a moment before placement and replication work.
func (c *Cluster) placesReplicas(n int) bool {
	u, kp, err := natsx.UserJWT(c.Keys.Platform, "natsxtest-probe", nil, nil)
	if err != nil {
		return false
	}
	nc, err := nats.Connect(c.URL(), nats.Timeout(2*time.Second), nats.UserJWT(func() (string, error) { return u, nil }, kp.Sign))
	if err != nil {
		return false
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	const probe = "NATSXTEST_PROBE"
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: probe, Subjects: []string{"natsxtest.probe"}, Replicas: n}); err != nil {
		return false
	}
	defer func() { _ = js.DeleteStream(context.Background(), probe) }()
	_, err = js.Publish(ctx, "natsxtest.probe", nil)
	return err == nil
}

func (c *Cluster) leader() *server.Server {
	for _, s := range c.Servers {
		if s.Running() && s.JetStreamIsLeader() {
			return s
		}
	}
	return nil
}

// URL lists every node's client URL, for a client that fails over.
func (c *Cluster) URL() string {
	var urls []string
	for _, s := range c.Servers {
		urls = append(urls, s.ClientURL())
	}
	return strings.Join(urls, ",")
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Connect dials the cluster (failing over between its nodes) with R3
// streams, closed by t.Cleanup.
func (c *Cluster) Connect(t testing.TB) *natsx.Conn {
	t.Helper()
	conn, err := natsx.Connect(context.Background(), natsx.Options{URL: c.URL(), KeysFile: c.KeysFile, Replicas: len(c.Servers), Name: t.Name()})
	if err != nil {
		t.Fatalf("connect to the cluster: %v", err)
	}
	t.Cleanup(conn.Close)
	return conn
}
