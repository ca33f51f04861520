// Package natsx owns VRSky's connection to NATS: it either starts the
// embedded nats-server with JetStream (the single-machine default) or dials
// an external cluster, and hands both out through the same Conn so the rest
// of the platform has one code path.
//
// Both run in NATS operator mode: the servers trust VRSky's operator (Keys)
// and keep account claims in a full resolver, so every tenant can have an
// account of its own (PushAccount, DialAs) and every connection signs in
// as a user minted for it. The embedded server's platform connection is
// in-process, as a user valid in-process only. Without Options.Listen the
// server has no network listener at all; with it, other nodes sign in as
// users they mint with a copy of DataDir/KeysFile (see RATIONALE.md).
package natsx

import (
	"context"
	"errors"
	"fmt"
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

// Options selects and tunes the NATS backend.
type Options struct {
	// URL of an external NATS cluster, or of another node's embedded server
	// (its Listen address). Empty starts the embedded server.
	URL string
	// KeysFile is, with URL, the operator keys (KeysFile's format) the
	// servers at URL trust: for another node's embedded server a copy of
	// its DataDir/KeysFile; for an external cluster the file whose
	// ServerConfig its servers run with. Required with URL.
	KeysFile string
	// DataDir is where the embedded server keeps JetStream files
	// (DataDir/jetstream), the account claims it was given
	// (DataDir/nats-accounts) and its operator keys (DataDir/KeysFile,
	// generated on first start). Required when URL is empty.
	DataDir string
	// Listen is the embedded server's client address, "host:port", for
	// other nodes; port 0 picks a free one. Clients that connect there must
	// hold a user of one of its accounts, which only the operator keys can
	// mint. Empty means no network listener: only this process reaches the
	// server.
	Listen string
	// SyncAlways makes the embedded server fsync every JetStream write
	// before acknowledging it, instead of on an interval.
	SyncAlways bool
	// Replicas is the stream replication factor platform streams ask for:
	// 1 for the embedded server, 3 for a production cluster. Zero means 1
	// for the embedded server and, for URL, the size of the cluster the
	// server belongs to (ClusterReplicas): 1 outside a cluster, at most 3.
	Replicas int
	// Name identifies this process to NATS (connection name).
	Name string
	// Logger receives the embedded server's notices. Nil discards them.
	Logger *slog.Logger
}

// Conn is a live connection to NATS with JetStream, as a user of one
// account. Close releases it and, for the Conn Connect returned on the
// embedded backend, shuts the server down.
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
	keys     *Keys
	account  nkeys.KeyPair    // whose user the connection signs in as
	perms    *jwt.Permissions // the user's permissions; nil: all of the account
	replicas int
	// listenURL and keysPath are the embedded server's network address
	// and keys file, when it listens.
	listenURL, keysPath string
}

// Connect starts the embedded server or dials opts.URL, as the platform
// account, and waits until JetStream answers.
func Connect(ctx context.Context, opts Options) (*Conn, error) {
	d := dialer{url: opts.URL, replicas: max(opts.Replicas, 1)}
	if opts.URL == "" {
		if opts.KeysFile != "" {
			return nil, errors.New("natsx: KeysFile signs in to an external server (URL); the embedded one keeps its own in DataDir")
		}
		e, err := startEmbedded(opts)
		if err != nil {
			return nil, err
		}
		d.srv, d.keys, d.listenURL = e.srv, e.keys, e.listenURL
		if opts.Listen != "" {
			d.keysPath = e.keysPath
		}
		d.account = d.keys.Platform
		c, err := d.connect(ctx, opts.Name)
		if err != nil {
			e.srv.Shutdown()
			e.srv.WaitForShutdown()
			return nil, err
		}
		c.own = true
		return c, nil
	}
	if opts.KeysFile == "" {
		return nil, errors.New("natsx: an external server (URL) needs KeysFile: VRSky runs NATS in operator mode, one account per tenant")
	}
	keys, err := LoadKeys(opts.KeysFile)
	if err != nil {
		return nil, err
	}
	d.keys, d.account = keys, keys.Platform
	c, err := d.connect(ctx, opts.Name)
	if err != nil || opts.Replicas > 0 {
		return c, err
	}
	c.Replicas = ClusterReplicas(c.NC)
	c.d.replicas = c.Replicas // and the connections Dial and DialAs open
	return c, nil
}

// ClusterReplicas is the replication factor for the cluster nc is
// connected to: the number of its servers nc knows (the URLs it was given
// and those the servers advertise), at most 3; 1 for a server outside a
// cluster. A cluster whose servers do not advertise their client URLs
// (no_advertise) counts only the URLs given.
func ClusterReplicas(nc *nats.Conn) int {
	if nc.ConnectedClusterName() == "" {
		return 1
	}
	return min(3, max(len(nc.Servers()), 1))
}

// Dial opens another connection to the same NATS as the same account, as
// a second node in this process would have: in-process to the embedded
// server, else to the same URL. Closing it leaves c and the server running.
func (c *Conn) Dial(ctx context.Context, name string) (*Conn, error) {
	return c.d.connect(ctx, name)
}

// As says whom DialAs signs in as, and where.
type As struct {
	// Name identifies the connection to NATS.
	Name string
	// Account is the account key the connection's user is minted by.
	Account nkeys.KeyPair
	// Permissions restrict the user within its account; nil: none.
	Permissions *jwt.Permissions
	// URL, when set, is another server to dial (a tenant's dedicated
	// instance, which trusts the same operator); Replicas is then the
	// replication factor of streams there (zero means 1). Empty: the
	// servers c is connected to, with c's replication factor.
	URL      string
	Replicas int
}

// DialAs opens a connection as a new user of another account (a tenant's:
// see Keys.TenantAccount), whose claims must have been pushed first
// (PushAccount). JetStream must be enabled for the account.
func (c *Conn) DialAs(ctx context.Context, as As) (*Conn, error) {
	d := c.d
	d.account, d.perms = as.Account, as.Permissions
	if as.URL != "" {
		d.url, d.srv, d.replicas = as.URL, nil, max(as.Replicas, 1)
	}
	return d.connect(ctx, as.Name)
}

// DialCore is DialAs for a user that has no JetStream (its permissions
// leave out JetStream's API): the Conn's JS is nil.
func (c *Conn) DialCore(_ context.Context, as As) (*Conn, error) {
	d := c.d
	d.account, d.perms = as.Account, as.Permissions
	if as.URL != "" {
		d.url, d.srv, d.replicas = as.URL, nil, max(as.Replicas, 1)
	}
	nc, err := d.core(as.Name)
	if err != nil {
		return nil, err
	}
	return &Conn{NC: nc, Replicas: d.replicas, d: d}, nil
}

// Keys are the operator keys the connection's servers trust.
func (c *Conn) Keys() *Keys { return c.d.keys }

// connect opens a connection as d describes and waits for JetStream.
func (d dialer) connect(ctx context.Context, name string) (*Conn, error) {
	nc, err := d.core(name)
	if err != nil {
		return nil, err
	}
	c := &Conn{Replicas: d.replicas, d: d, NC: nc}
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

// core opens the core NATS connection of connect, as a user minted now.
func (d dialer) core(name string) (*nats.Conn, error) {
	var types []string
	if d.srv != nil {
		types = []string{jwt.ConnectionTypeInProcess}
	}
	userJWT, user, err := UserJWT(d.account, cmp(name, "vrsky"), types, d.perms)
	if err != nil {
		return nil, err
	}
	url := d.url
	nopts := []nats.Option{
		nats.Name(cmp(name, "vrsky")),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.UserJWT(func() (string, error) { return userJWT, nil }, user.Sign),
	}
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
	return nc, nil
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

// embedded is a running embedded server and the keys it trusts.
type embedded struct {
	srv  *server.Server
	keys *Keys
	// listenURL is set when the server listens.
	listenURL, keysPath string
}

func startEmbedded(opts Options) (*embedded, error) {
	if opts.DataDir == "" {
		return nil, errors.New("natsx: DataDir is required for the embedded server")
	}
	if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("natsx: data dir: %w", err)
	}
	e := &embedded{keysPath: filepath.Join(opts.DataDir, KeysFile)}
	keys, err := loadOrCreateKeys(e.keysPath)
	if err != nil {
		return nil, err
	}
	e.keys = keys
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
	if err := trust(sopts, keys, filepath.Join(opts.DataDir, "nats-accounts")); err != nil {
		return nil, err
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
	}
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

// TrustOptions sets up sopts, the options of a server to be started, in
// operator mode with keys: it trusts keys' operator, knows the system and
// platform accounts, and keeps the account claims VRSky pushes in
// resolverDir (a full resolver). The embedded server runs with it; tests
// use it for clusters that stand in for an external one.
func TrustOptions(sopts *server.Options, keys *Keys, resolverDir string) error {
	return trust(sopts, keys, resolverDir)
}

func trust(sopts *server.Options, keys *Keys, resolverDir string) error {
	opJWT, err := keys.OperatorJWT()
	if err != nil {
		return err
	}
	oc, err := jwt.DecodeOperatorClaims(opJWT)
	if err != nil {
		return fmt.Errorf("natsx: operator claims: %w", err)
	}
	sysJWT, err := keys.AccountJWT(keys.SystemAccount(), SystemAccountName, false, AccountLimits{})
	if err != nil {
		return err
	}
	plJWT, err := keys.AccountJWT(keys.PlatformAccount(), PlatformAccountName, true, Unlimited)
	if err != nil {
		return err
	}
	res, err := server.NewDirAccResolver(resolverDir, 0, 2*time.Minute, server.HardDelete)
	if err != nil {
		return fmt.Errorf("natsx: account resolver in %s: %w", resolverDir, err)
	}
	for pub, j := range map[string]string{keys.SystemAccount(): sysJWT, keys.PlatformAccount(): plJWT} {
		if err := res.Store(pub, j); err != nil {
			return fmt.Errorf("natsx: account resolver: %w", err)
		}
	}
	sopts.TrustedOperators = []*jwt.OperatorClaims{oc}
	sopts.SystemAccount = keys.SystemAccount()
	sopts.AccountResolver = res
	return nil
}

// ClientURL is the URL other processes can dial: the external URL, or the
// embedded server's listen address (they sign in with the keys in
// KeysPath). It is empty for an embedded server without a listener.
func (c *Conn) ClientURL() string {
	if c.d.srv != nil {
		return c.d.listenURL
	}
	return c.NC.ConnectedUrl()
}

// KeysPath is the file holding the keys other nodes sign in to the
// embedded server with (DataDir/KeysFile), or "" when the server does not
// listen or is not embedded.
func (c *Conn) KeysPath() string { return c.d.keysPath }

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
