// Package natsx owns VRSky's connection to NATS: it either starts the
// embedded nats-server with JetStream (the single-machine default) or dials
// an external cluster, and hands both out through the same Conn so the rest
// of the platform has one code path.
//
// The embedded server admits no anonymous client. The platform's own
// connection is in-process and signs in with an nkey generated at each
// start that only in-process connections may use. Without Options.Listen
// the server has no network listener at all; with it, clients on the
// network must sign in with the node key kept in DataDir/NodeKeyFile (see
// RATIONALE.md).
package natsx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	neturl "net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
)

// PublishAsyncTimeout bounds how long an asynchronous JetStream publish
// waits for its acknowledgement before its future fails.
const PublishAsyncTimeout = 10 * time.Second

// NodeKeyFile is the name, in the embedded server's DataDir, of the file
// holding the nkey seed other nodes sign in with when the server listens
// (Options.Listen). It is generated on the first start that listens,
// readable by its owner only (0600); a node joins with a copy of it as its
// Options.NKeyFile.
const NodeKeyFile = "nats-node.nk"

// Options selects and tunes the NATS backend.
type Options struct {
	// URL of an external NATS cluster, or of another node's embedded server
	// (its Listen address). Empty starts the embedded server. User and
	// password, if any, go in the URL.
	URL string
	// NKeyFile is, with URL, a file holding the nkey user seed to sign in
	// with: e.g. a copy of the DataDir/NodeKeyFile of the node whose
	// embedded server URL names.
	NKeyFile string
	// CredsFile is, with URL, a NATS credentials file (user JWT and seed)
	// for a server with decentralised (operator) authentication.
	CredsFile string
	// DataDir is where the embedded server keeps JetStream files
	// (DataDir/jetstream) and, when it listens, the node key
	// (DataDir/NodeKeyFile). Required when URL is empty.
	DataDir string
	// Listen is the embedded server's client address, "host:port", for
	// other nodes; port 0 picks a free one. Clients that connect there must
	// sign in with the node key. Empty means no network listener: only this
	// process reaches the server.
	Listen string
	// SyncAlways makes the embedded server fsync every JetStream write
	// before acknowledging it, instead of on an interval.
	SyncAlways bool
	// Replicas is the stream replication factor platform streams ask for:
	// 1 for the embedded server, 3 for a production cluster. Zero means 1.
	Replicas int
	// Name identifies this process to NATS (connection name).
	Name string
	// Logger receives the embedded server's notices. Nil discards them.
	Logger *slog.Logger
}

// Conn is a live connection to NATS with JetStream. Close releases it and,
// for the embedded backend, shuts the server down.
type Conn struct {
	// NC is the core NATS connection.
	NC *nats.Conn
	// JS is the JetStream context on NC.
	JS jetstream.JetStream
	// Replicas is the replication factor for streams the platform creates.
	Replicas int

	d   dialer
	own bool // Close shuts the embedded server down
}

// dialer is what it takes to open another connection like a Conn's own.
type dialer struct {
	url      string         // external URL; unused in-process
	srv      *server.Server // the embedded server, dialled in-process
	auth     []nats.Option  // how the connection signs in
	replicas int
	// listenURL and nodeKey are the embedded server's network address and
	// node key file, when it listens.
	listenURL, nodeKey string
}

// Connect starts the embedded server or dials opts.URL and waits until
// JetStream answers.
func Connect(ctx context.Context, opts Options) (*Conn, error) {
	d := dialer{url: opts.URL, replicas: max(opts.Replicas, 1)}
	if opts.URL == "" {
		if opts.NKeyFile != "" || opts.CredsFile != "" {
			return nil, errors.New("natsx: NKeyFile and CredsFile sign in to an external server (URL); the embedded one needs neither")
		}
		e, err := startEmbedded(opts)
		if err != nil {
			return nil, err
		}
		d.srv, d.auth, d.listenURL, d.nodeKey = e.srv, []nats.Option{e.platform}, e.listenURL, e.nodeKey
		c, err := d.connect(ctx, opts.Name)
		if err != nil {
			e.srv.Shutdown()
			e.srv.WaitForShutdown()
			return nil, err
		}
		c.own = true
		return c, nil
	}
	auth, err := clientAuth(opts)
	if err != nil {
		return nil, err
	}
	d.auth = auth
	return d.connect(ctx, opts.Name)
}

// Dial opens another connection to the same NATS with the same
// credentials, as a second node in this process would have: in-process to
// the embedded server, else to the same URL. Closing it leaves c and the
// server running.
func (c *Conn) Dial(ctx context.Context, name string) (*Conn, error) {
	return c.d.connect(ctx, name)
}

// clientAuth turns opts' credential files into connect options.
func clientAuth(opts Options) ([]nats.Option, error) {
	switch {
	case opts.NKeyFile != "" && opts.CredsFile != "":
		return nil, errors.New("natsx: NKeyFile and CredsFile are exclusive: give one")
	case opts.NKeyFile != "":
		o, err := nats.NkeyOptionFromSeed(opts.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("natsx: nkey seed file %s: %w", opts.NKeyFile, err)
		}
		return []nats.Option{o}, nil
	case opts.CredsFile != "":
		if _, err := os.Stat(opts.CredsFile); err != nil {
			return nil, fmt.Errorf("natsx: credentials file: %w", err)
		}
		return []nats.Option{nats.UserCredentials(opts.CredsFile)}, nil
	}
	return nil, nil
}

// connect opens a connection as d describes and waits for JetStream.
func (d dialer) connect(ctx context.Context, name string) (*Conn, error) {
	c := &Conn{Replicas: d.replicas, d: d}
	url := d.url
	nopts := []nats.Option{
		nats.Name(cmp(name, "vrsky")),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
	}
	nopts = append(nopts, d.auth...)
	if d.srv != nil {
		// The URL is not dialled in-process, but it must parse.
		url = "nats://in-process"
		nopts = append(nopts, nats.InProcessServer(d.srv))
	}
	nc, err := nats.Connect(url, nopts...)
	if err != nil {
		if d.srv != nil {
			return nil, fmt.Errorf("natsx: connect to the embedded server: %w", err)
		}
		return nil, fmt.Errorf("natsx: connect %s: %w", redact(url), err)
	}
	c.NC = nc
	// Without a timeout, an async publish whose acknowledgement is lost
	// (e.g. with a stream leader that dies) never resolves its future.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(PublishAsyncTimeout))
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("natsx: jetstream: %w", err)
	}
	c.JS = js
	if err := c.waitJetStream(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (c *Conn) waitJetStream(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := c.JS.AccountInfo(actx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("natsx: JetStream not available: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// embedded is a running embedded server and how to sign in to it.
type embedded struct {
	srv *server.Server
	// platform signs the platform's in-process connections in.
	platform nats.Option
	// listenURL and nodeKey are set when the server listens.
	listenURL, nodeKey string
}

func startEmbedded(opts Options) (*embedded, error) {
	if opts.DataDir == "" {
		return nil, errors.New("natsx: DataDir is required for the embedded server")
	}
	// The platform's key lives in this process's memory only, for this
	// run, and only in-process connections may use it.
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, fmt.Errorf("natsx: platform nkey: %w", err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("natsx: platform nkey: %w", err)
	}
	e := &embedded{platform: nats.Nkey(pub, kp.Sign)}
	users := []*server.NkeyUser{{
		Nkey:                   pub,
		AllowedConnectionTypes: map[string]struct{}{jwt.ConnectionTypeInProcess: {}},
	}}
	sopts := &server.Options{
		ServerName:         cmp(opts.Name, "vrsky"),
		DontListen:         opts.Listen == "",
		JetStream:          true,
		StoreDir:           filepath.Join(opts.DataDir, "jetstream"),
		SyncAlways:         opts.SyncAlways,
		NoSigs:             true,
		MaxPayload:         8 << 20,
		JetStreamMaxMemory: -1,
		JetStreamMaxStore:  -1,
	}
	if opts.Listen != "" {
		h, p, err := net.SplitHostPort(opts.Listen)
		if err != nil {
			return nil, fmt.Errorf("natsx: listen address %q: %w", opts.Listen, err)
		}
		n, err := strconv.Atoi(p)
		if err != nil {
			return nil, fmt.Errorf("natsx: listen port %q: %w", p, err)
		}
		if n == 0 {
			n = server.RANDOM_PORT // nats-server reads 0 as its default, 4222
		}
		sopts.Host, sopts.Port = h, n
		e.nodeKey = filepath.Join(opts.DataDir, NodeKeyFile)
		nodePub, err := loadNodeKey(e.nodeKey)
		if err != nil {
			return nil, err
		}
		users = append(users, &server.NkeyUser{
			Nkey:                   nodePub,
			AllowedConnectionTypes: map[string]struct{}{jwt.ConnectionTypeStandard: {}},
		})
	}
	sopts.Nkeys = users
	srv, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("natsx: embedded server: %w", err)
	}
	if opts.Logger != nil {
		srv.SetLoggerV2(&logAdapter{l: opts.Logger.With("component", "nats-server")}, false, false, false)
	}
	go srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("natsx: embedded server did not become ready in 30s")
	}
	e.srv = srv
	if opts.Listen != "" {
		e.listenURL = srv.ClientURL()
	}
	return e, nil
}

// loadNodeKey returns the public key of the nkey seed in path, first
// generating the seed there (0600) if the file does not exist.
func loadNodeKey(path string) (string, error) {
	seed, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		seed, err = createNodeKey(path)
	}
	if err != nil {
		return "", fmt.Errorf("natsx: node key: %w", err)
	}
	kp, err := nkeys.ParseDecoratedNKey(seed)
	if err != nil {
		return "", fmt.Errorf("natsx: node key %s: %w", path, err)
	}
	defer kp.Wipe()
	pub, err := kp.PublicKey()
	if err != nil {
		return "", fmt.Errorf("natsx: node key %s: %w", path, err)
	}
	if !nkeys.IsValidPublicUserKey(pub) {
		return "", fmt.Errorf("natsx: node key %s: not an nkey user seed", path)
	}
	return pub, nil
}

// createNodeKey writes a new nkey user seed to path, which must not exist
// (a process that created it meanwhile wins and its seed is returned).
func createNodeKey(path string) ([]byte, error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	defer kp.Wipe()
	s, err := kp.Seed()
	if err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	seed := bytes.Clone(s) // Wipe overwrites s
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("create: %w", err)
	}
	_, err = f.Write(append(seed, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return seed, nil
}

// ClientURL is the URL other processes can dial: the external URL, or the
// embedded server's listen address (they sign in with NodeKeyPath). It is
// empty for an embedded server without a listener.
func (c *Conn) ClientURL() string {
	if c.d.srv != nil {
		return c.d.listenURL
	}
	return c.NC.ConnectedUrl()
}

// NodeKeyPath is the file holding the seed other nodes sign in to the
// embedded server with (DataDir/NodeKeyFile), or "" when the server does
// not listen or is not embedded.
func (c *Conn) NodeKeyPath() string { return c.d.nodeKey }

// Embedded reports whether this Conn is a connection to the in-process
// server.
func (c *Conn) Embedded() bool { return c.d.srv != nil }

// Ping checks that NATS answers within ctx.
func (c *Conn) Ping(ctx context.Context) error {
	if c.NC == nil || !c.NC.IsConnected() {
		return errors.New("natsx: not connected")
	}
	_, err := c.JS.AccountInfo(ctx)
	return err
}

// Close drains the client connection and stops the embedded server if
// Connect started it (not for a Conn from Dial).
func (c *Conn) Close() {
	if c.NC != nil {
		_ = c.NC.Drain()
		// Drain completes asynchronously; wait a bounded time.
		for i := 0; i < 100 && !c.NC.IsClosed(); i++ {
			time.Sleep(10 * time.Millisecond)
		}
		c.NC.Close()
	}
	c.shutdownServer()
}

func (c *Conn) shutdownServer() {
	if c.own {
		c.d.srv.Shutdown()
		c.d.srv.WaitForShutdown()
	}
}

// redact hides the passwords in a comma-separated list of URLs, for error
// messages.
func redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		if u, err := neturl.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			parts[i] = u.Redacted()
		}
	}
	return strings.Join(parts, ",")
}

func cmp(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// logAdapter forwards nats-server's logger to slog.
type logAdapter struct{ l *slog.Logger }

func (a *logAdapter) Noticef(format string, v ...any) { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a *logAdapter) Warnf(format string, v ...any)   { a.l.Warn(fmt.Sprintf(format, v...)) }
func (a *logAdapter) Fatalf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a *logAdapter) Errorf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a *logAdapter) Debugf(format string, v ...any)  { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a *logAdapter) Tracef(format string, v ...any)  {}
